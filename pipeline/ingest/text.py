"""HTML fragments (feed summaries, content:encoded) to plain text with paragraphs.

Later stages split on "\\n\\n" for paragraphs, so block elements and ``<br><br>`` become paragraph
breaks and everything else becomes single spaces. Script-like elements are dropped with their
text, even though feedparser's sanitiser removes most of them already.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

logger = logging.getLogger(__name__)

_BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "caption",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)
_DROP_TAGS = frozenset(
    [
        "script",
        "style",
        "noscript",
        "iframe",
        "object",
        "embed",
        "applet",
        "template",
        "head",
        "meta",
        "link",
        "title",
        "svg",
        "math",
        "canvas",
        "audio",
        "video",
        "source",
        "button",
        "select",
        "option",
        "textarea",
        "input",
        "frame",
        "frameset",
    ]
)
_PARA_BREAK = "\x00P\x00"
_LINE_BREAK = "\x00L\x00"
_SPACES = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")
_MARKUP_HINT = re.compile(r"<[A-Za-z!/?]|&[#A-Za-z0-9]+;")


def normalise_paragraphs(text: str) -> str:
    """Collapse whitespace inside paragraphs; paragraphs are separated by blank lines."""
    paragraphs = re.split(r"\n[ \t\r\f\v\u00a0]*\n", text.replace("\r\n", "\n").replace("\r", "\n"))
    cleaned = (_SPACES.sub(" ", p).strip() for p in paragraphs)
    return "\n\n".join(p for p in cleaned if p)


def _tag(el: Any) -> str:
    tag = el.tag
    if not isinstance(tag, str):  # comments and processing instructions
        return ""
    return tag.rsplit("}", 1)[-1].lower()


def _walk(root: Any) -> str:
    """Text of a tree with break markers; iterative, so deep nesting cannot overflow the stack."""
    out: list[str] = []
    # Stack of (element, entering); leaving an element emits its closing break and its tail.
    stack: list[tuple[Any, bool]] = [(root, True)]
    while stack:
        el, entering = stack.pop()
        tag = _tag(el)
        if entering:
            if tag in _DROP_TAGS or not tag:
                if el.tail:
                    out.append(el.tail)
                continue
            if tag in _BLOCK_TAGS:
                out.append(_PARA_BREAK)
            elif tag == "br":
                out.append(_LINE_BREAK)
            if el.text:
                out.append(el.text)
            stack.append((el, False))
            stack.extend((child, True) for child in reversed(el))
        else:
            if tag in _BLOCK_TAGS:
                out.append(_PARA_BREAK)
            if el.tail and el is not root:
                out.append(el.tail)
    return "".join(out)


def _lines_to_paragraphs(raw: str) -> str:
    # Two or more line breaks in a row mark a paragraph (the <br><br> habit of many CMSs).
    raw = re.sub(f"(?:{re.escape(_LINE_BREAK)}\\s*){{2,}}", _PARA_BREAK, raw)
    raw = raw.replace(_LINE_BREAK, " ")
    parts = (_SPACES.sub(" ", p).strip() for p in raw.split(_PARA_BREAK))
    return "\n\n".join(p for p in parts if p)


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment, paragraphs separated by "\\n\\n"."""
    if not fragment or not fragment.strip():
        return ""
    if not _MARKUP_HINT.search(fragment):
        return normalise_paragraphs(fragment)
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, etree.XMLSyntaxError, ValueError) as exc:
        logger.debug("HTML fragment did not parse (%s); stripping tags with a regex", exc)
        return normalise_paragraphs(html.unescape(_TAG.sub(" ", fragment)))
    return _lines_to_paragraphs(_walk(root))
