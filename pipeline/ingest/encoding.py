"""Bytes of a web page to text, for sites that never declare their charset.

Hebrew and Arabic outlets still serve windows-1255 / windows-1256 pages, often without any
declaration; decoding those as utf-8 or windows-1252 gives silent mojibake that every later stage
would faithfully translate. The order below follows the HTML standard's sniffing (BOM, transport,
in-document) and then guesses with chardet before falling back to replacement characters.
"""

from __future__ import annotations

import codecs
import logging
import re

logger = logging.getLogger(__name__)

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# WHATWG label remapping where Python's codec differs from what browsers use.
_ALIASES = {
    "iso-8859-1": "windows-1252",
    "iso8859-1": "windows-1252",
    "latin1": "windows-1252",
    "latin-1": "windows-1252",
    "us-ascii": "windows-1252",
    "ascii": "windows-1252",
    "iso-8859-9": "windows-1254",
    "iso-8859-11": "windows-874",
    "tis-620": "windows-874",
    "iso-8859-8-i": "iso-8859-8",
    "logical": "iso-8859-8",
    "visual": "iso-8859-8",
    "x-mac-hebrew": "mac-roman",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-sjis": "shift_jis",
    "utf8": "utf-8",
}
_CHARSET_PARAM = re.compile(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE
)
_SNIFF_BYTES = (
    4096  # the HTML standard looks for <meta charset> in the first 1024 bytes; be lenient
)
_GUESS_BYTES = 200_000  # enough text for chardet; bounded work on big pages


def _codec(label: str | bytes | None) -> str | None:
    """A Python codec name for a charset label, or None when unknown."""
    if not label:
        return None
    name = label.decode("ascii", "ignore") if isinstance(label, bytes) else label
    name = name.strip().strip("'\"").lower()
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def charset_from_content_type(content_type: str | None) -> str | None:
    """The codec named by an HTTP Content-Type header, or None."""
    if not content_type:
        return None
    match = _CHARSET_PARAM.search(content_type.encode("latin-1", "ignore"))
    return _codec(match.group(1)) if match else None


def _try(content: bytes, codec: str | None) -> str | None:
    if codec is None:
        return None
    # A declared UTF-16/32 charset on an ASCII-compatible page is always a lie (HTML standard).
    if codec.startswith(("utf_16", "utf_32", "utf-16", "utf-32")):
        codec = "utf-8"
    try:
        return content.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _guess(content: bytes) -> str | None:
    import chardet

    result = chardet.detect(content[:_GUESS_BYTES])
    return _codec(result.get("encoding"))


def decode_html(content: bytes, content_type: str | None) -> str:
    """Decode a page: BOM, HTTP charset, <meta> charset, strict utf-8, chardet, then replace."""
    for bom, codec in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(codec, errors="replace")
    declared = charset_from_content_type(content_type)
    text = _try(content, declared)
    if text is not None:
        return text
    if declared:
        logger.info("page does not decode as its HTTP charset %s; sniffing", declared)
    meta = _META_CHARSET.search(content[:_SNIFF_BYTES])
    text = _try(content, _codec(meta.group(1)) if meta else None)
    if text is not None:
        return text
    text = _try(content, "utf-8")
    if text is not None:
        return text
    guessed = _guess(content)
    text = _try(content, guessed)
    if text is not None:
        logger.debug("page has no usable charset declaration; decoded as guessed %s", guessed)
        return text
    logger.warning("page charset unknown (guess %s); decoding utf-8 with replacement", guessed)
    return content.decode(guessed or "utf-8", errors="replace")
