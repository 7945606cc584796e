"""Parse one outlet's RSS/Atom/RDF feed into :class:`FeedItem` records.

feedparser is lenient, which is what real feeds need, but its fallback parser expands entity
declarations without limit (a 100 KB quadratic-blowup feed grows to ~300 MB) and, given bytes
that look like a path, opens a local file. So the input is checked first (size cap, no
``<!ENTITY`` anywhere) and always handed over as a stream.

Reject reasons: ``feed_empty`` (no bytes, or a feed with no entries), ``feed_too_large``,
``feed_entities`` (DTD with ENTITY declarations: billion laughs, quadratic blowup, XXE),
``feed_malformed`` (not a feed: HTML page, garbage), ``feed_bozo`` (informational: the feed was
malformed but feedparser recovered it, so its entries are kept; the reject records the parser's
complaint so a broken outlet feed is visible), ``feed_truncated`` (more than ``max_items``
entries; the first ones are kept), ``item_no_link`` (an entry without a usable http(s) link),
``item_malformed`` (an entry the conversion failed on; the others are kept).
"""

from __future__ import annotations

import io
import logging
import re
from datetime import UTC, datetime
from typing import Any

from pipeline.ingest.text import html_to_text, normalise_paragraphs
from pipeline.ingest.urls import canonicalize_url
from pipeline.records import FeedItem, Outlet, Reject

logger = logging.getLogger(__name__)

STAGE = "ingest"
DEFAULT_MAX_FEED_BYTES = 5_000_000
# Reasons that mean the feed could not be read at all (an empty feed is not a failure).
FATAL_FEED_REASONS = frozenset({"feed_too_large", "feed_entities", "feed_malformed"})

_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)
_ROOT_NAME = re.compile(rb"<([A-Za-z_][A-Za-z0-9_:.\-]*)")
_HTML_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")


def _as_feedparser_sees_it(data: bytes, content_type: str | None) -> bytes:
    """The utf-8 bytes feedparser will parse (it honours exotic declared encodings: UTF-7, EBCDIC)."""
    try:
        from feedparser.encodings import convert_to_utf8

        headers = {"content-type": content_type} if content_type else {}
        return bytes(convert_to_utf8(headers, data, {}))
    except Exception:  # an internal helper of feedparser; the raw scan still applies
        return b""


def has_entity_declarations(data: bytes, content_type: str | None = None) -> bool:
    """True when the document contains an ``<!ENTITY`` declaration anywhere.

    The whole document is scanned rather than only its prolog: telling prolog from body would
    need an XML parser, and comment/CDATA tricks can fool a regex. The cost is that a feed
    quoting ``<!ENTITY`` literally inside CDATA is rejected too (rare; the reason says why).
    The raw bytes are scanned with NUL bytes removed (UTF-16/32), and again as feedparser
    will decode them.
    """
    if _ENTITY_DECL.search(data.replace(b"\x00", b"")):
        return True
    return bool(_ENTITY_DECL.search(_as_feedparser_sees_it(data, content_type)))


def root_tag(data: bytes) -> str:
    """Lowercased local name of the document's first element ("" when there is none)."""
    head = _COMMENT.sub(b"", data[:65536].replace(b"\x00", b""))
    match = _ROOT_NAME.search(head)
    if not match:
        return ""
    return match.group(1).decode("ascii", "replace").rsplit(":", 1)[-1].lower()


def _reject(outlet: Outlet, url: str, reason: str, detail: str = "") -> Reject:
    return Reject(stage=STAGE, outlet_id=outlet.outlet_id, url=url, reason=reason, detail=detail)


def _detail_text(detail: Any, fallback: str) -> str:
    """Plain text of a feedparser value with its ``*_detail`` type (HTML or plain text)."""
    if isinstance(detail, dict):
        value = detail.get("value", fallback) or ""
        kind = (detail.get("type") or "").lower()
        if kind and not any(t in kind for t in _HTML_TYPES):
            return normalise_paragraphs(value)
        return html_to_text(value)
    return html_to_text(fallback or "")


def _published(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            try:
                year, month, day, hour, minute, second = parsed[:6]
                return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
            except (TypeError, ValueError, OverflowError):
                continue
    return None


def _link_candidates(entry: Any) -> list[str]:
    candidates: list[str] = []
    if entry.get("link"):
        candidates.append(entry["link"])
    links = entry.get("links") or []
    for rel in ("alternate", None):
        for link in links:
            if (
                isinstance(link, dict)
                and link.get("href")
                and (rel is None or link.get("rel") == rel)
            ):
                candidates.append(link["href"])
    guid = entry.get("id") or ""
    if isinstance(guid, str) and guid.lower().startswith(("http://", "https://")):
        candidates.append(guid)
    return candidates


def _canonical_link(entry: Any, base_url: str | None) -> tuple[str, str] | None:
    for raw in _link_candidates(entry):
        if not isinstance(raw, str):
            continue
        try:
            return raw, canonicalize_url(raw, base=base_url)
        except ValueError:
            continue
    return None


def _feed_lang(feed: Any) -> str:
    lang = feed.get("language") or ""
    if not isinstance(lang, str):
        return ""
    letters = re.match(r"\s*([A-Za-z]{2})", lang)
    return letters.group(1).lower() if letters else ""


def entry_text_fields(entry: Any) -> tuple[str, str, str]:
    """Plain-text title, summary and content (the longest content block) of a feedparser entry."""
    contents = [
        _detail_text(c, c.get("value", ""))
        for c in entry.get("content") or []
        if isinstance(c, dict)
    ]
    content = max(contents, key=len, default="")
    summary = _detail_text(entry.get("summary_detail"), entry.get("summary", ""))
    title = _detail_text(entry.get("title_detail"), entry.get("title", ""))
    return title, summary, content


def _entry_to_item(entry: Any, outlet: Outlet, base_url: str | None, lang: str) -> FeedItem | None:
    link = _canonical_link(entry, base_url)
    if link is None:
        return None
    raw_url, url = link
    title, summary, content = entry_text_fields(entry)
    return FeedItem(
        outlet_id=outlet.outlet_id,
        url=url,
        raw_url=raw_url,
        title=title,
        published_at=_published(entry),
        summary=summary,
        content=content,
        feed_lang=lang,
    )


def _entry_label(entry: Any) -> str:
    title = (
        _detail_text(entry.get("title_detail"), entry.get("title") or "") or entry.get("id") or ""
    )
    return str(title)[:200]


def parse_feed(
    data: bytes,
    outlet: Outlet,
    *,
    content_type: str | None = None,
    base_url: str | None = None,
    max_items: int = 500,
    max_bytes: int = DEFAULT_MAX_FEED_BYTES,
) -> tuple[list[FeedItem], list[Reject]]:
    """Items of a feed and the rejects met on the way; never raises on bad input.

    ``content_type`` (the HTTP header) lets feedparser apply the HTTP/XML encoding rules;
    ``base_url`` (the URL the feed was fetched from) resolves relative links.
    """
    import feedparser

    url = base_url or outlet.feed_url
    if not data or not data.strip():
        return [], [_reject(outlet, url, "feed_empty", "no bytes")]
    if len(data) > max_bytes:
        return [], [_reject(outlet, url, "feed_too_large", f"{len(data)} bytes > {max_bytes}")]
    if has_entity_declarations(data, content_type):
        logger.warning("%s: feed declares XML entities; rejected unparsed", outlet.outlet_id)
        return [], [
            _reject(
                outlet,
                url,
                "feed_entities",
                "DOCTYPE declares entities (entity expansion/XXE risk)",
            )
        ]

    headers: dict[str, str] = {}
    if content_type:
        # Without a Content-Type, any header makes feedparser flag NonXMLContentType, so the
        # base URL goes along only with one; links are resolved against base_url below anyway.
        headers["content-type"] = content_type
        if base_url:
            headers["content-location"] = base_url
    try:
        parsed = feedparser.parse(
            io.BytesIO(data),
            response_headers=headers,
            resolve_relative_uris=True,
            sanitize_html=True,
        )
    except Exception as exc:  # feedparser's own bugs on hostile input must not stop a batch
        logger.warning("%s: feedparser failed: %r", outlet.outlet_id, exc)
        return [], [_reject(outlet, url, "feed_malformed", f"parser error: {exc!r}"[:500])]

    if root_tag(data) == "html":
        logger.warning("%s: an HTML page, not a feed", outlet.outlet_id)
        return [], [_reject(outlet, url, "feed_malformed", "an HTML page, not a feed")]

    bozo = f"{type(parsed.get('bozo_exception')).__name__}: {parsed.get('bozo_exception')}"[:500]
    entries = parsed.get("entries") or []
    feed = parsed.get("feed") or {}
    rejects: list[Reject] = []
    if not entries:
        if not parsed.get("version") and (parsed.get("bozo") or not feed):
            detail = bozo if parsed.get("bozo") else "no RSS/Atom/RDF elements found"
            logger.warning("%s: not a feed (%s)", outlet.outlet_id, detail)
            return [], [_reject(outlet, url, "feed_malformed", detail)]
        if parsed.get("bozo"):
            rejects.append(_reject(outlet, url, "feed_bozo", bozo))
        logger.info("%s: feed has no entries", outlet.outlet_id)
        rejects.append(_reject(outlet, url, "feed_empty", "feed has no entries"))
        return [], rejects
    if parsed.get("bozo"):
        logger.warning("%s: malformed feed recovered (%s)", outlet.outlet_id, bozo)
        rejects.append(_reject(outlet, url, "feed_bozo", bozo))
    if len(entries) > max_items:
        logger.warning(
            "%s: %d entries, keeping the first %d", outlet.outlet_id, len(entries), max_items
        )
        rejects.append(
            _reject(outlet, url, "feed_truncated", f"{len(entries)} entries > {max_items}")
        )
        entries = entries[:max_items]

    lang = _feed_lang(feed)
    items: list[FeedItem] = []
    for entry in entries:
        try:
            item = _entry_to_item(entry, outlet, base_url, lang)
        except Exception as exc:  # one odd entry must not lose the others
            logger.warning("%s: entry skipped: %r", outlet.outlet_id, exc)
            rejects.append(_reject(outlet, url, "item_malformed", f"{exc!r}"[:500]))
            continue
        if item is None:
            rejects.append(_reject(outlet, url, "item_no_link", f"entry {_entry_label(entry)!r}"))
            continue
        items.append(item)
    return items, rejects
