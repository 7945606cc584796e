"""Untrusted text made safe to show: bidi controls made visible, links kept only for http(s).

Autoescaping (Jinja2) stops markup; these two helpers stop what escaping cannot:
- Bidi embedding/override/isolate characters (U+202A-U+202E, U+2066-U+2069) would reorder the
  text around them as it is displayed ("Trojan Source"), so every one is replaced by a visible
  marker such as ``[U+202E]``. The replacement happens once, in the statement model, so every
  export format shows the same text; the warehouse keeps the original bytes. Marks that only
  nudge direction (LRM, RLM, ALM) are ordinary in Hebrew and Arabic text and are kept.
- A link keeps its URL only when the scheme is http or https (no ``javascript:``, ``data:``, ...).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """The text with bidi controls replaced by visible markers (``[U+202E]``)."""
    return BIDI_CONTROLS.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


def safe_href(url: str | None) -> str | None:
    """The URL when it is an absolute http(s) URL without whitespace or controls, else None."""
    if not url:
        return None
    url = url.strip()
    if any(ord(c) < 0x21 or c in "\u007f\u2028\u2029" or BIDI_CONTROLS.match(c) for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url
