"""Canonical URLs: one article reached through two links gets one id.

Article ids are the hash of the canonical URL (:func:`pipeline.records.article_id_for`), so the
rules here decide what counts as "the same article". They are deliberately conservative:

- scheme and host are lowercased, default ports and fragments dropped, and tracking parameters
  (``utm_*``, ``fbclid``, ``gclid``, ...) removed; the remaining query parameters are sorted;
- the host is otherwise kept as is: ``www.example.com`` and ``example.com`` can be different
  sites (and often are for news outlets with regional editions), so stripping ``www.`` could
  merge articles that are not the same;
- the path keeps its case and trailing slash (servers may treat them differently), but its
  percent-encoding is normalised so a raw Hebrew/Arabic path and its percent-encoded form agree;
- user info (``user:pass@``) is dropped: it never identifies an article and should not be stored.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urljoin, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}

# Exact (lowercased) names of query parameters that only track the reader.
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "ref",
        "ref_src",
        "ref_url",
        "cmpid",
        "at_medium",
        "at_campaign",
        "at_custom1",
        "at_custom2",
        "at_custom3",
        "at_custom4",
        "at_ptr_name",
        "at_link_id",
        "ocid",
        "xtor",
        "_ga",
        "_gl",
        "s_cid",
        "smid",
        "spm",
        "__twitter_impression",
    }
)
# Prefixes of tracking parameter families (Google Analytics, Matomo/Piwik, HubSpot, ...).
TRACKING_PREFIXES: tuple[str, ...] = ("utm_", "pk_", "mtm_", "_hs", "hsa_")

_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = "/:@!$'()*+,;=-._~%?"
_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")


def _is_tracking(key: str) -> bool:
    name = unquote(key).strip().lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def _normalise_escapes(text: str, safe: str) -> str:
    """Percent-encode what must be encoded, keep existing escapes, uppercase their hex."""
    quoted = quote(text, safe=safe)
    # A lone "%" not followed by two hex digits must itself be escaped.
    quoted = re.sub(r"%(?![0-9a-fA-F]{2})", "%25", quoted)
    return _ESCAPE.sub(lambda m: m.group(0).upper(), quoted)


def _host(hostname: str) -> str:
    if ":" in hostname:  # IPv6 literal
        return f"[{hostname}]"
    try:
        return hostname.encode("idna").decode("ascii")
    except UnicodeError:
        return hostname


def canonicalize_url(url: str, base: str | None = None) -> str:
    """The canonical form of ``url`` (resolved against ``base``); ValueError unless http(s)."""
    raw = url.strip()
    if not raw:
        raise ValueError("empty URL")
    if base:
        raw = urljoin(base.strip(), raw)
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"not an http(s) URL: {url!r}")
    hostname = parts.hostname
    if not hostname:
        raise ValueError(f"URL has no host: {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"URL has an invalid port: {url!r}") from exc
    netloc = _host(hostname.rstrip("."))
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    path = _normalise_escapes(parts.path or "/", _PATH_SAFE)
    pairs = [p for p in parts.query.split("&") if p]
    kept = sorted(
        _normalise_escapes(p, _QUERY_SAFE) for p in pairs if not _is_tracking(p.split("=", 1)[0])
    )
    query = "&".join(kept)
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")
