"""Find an outlet's feed from its homepage, and check configured feeds once.

Discovery reads the homepage's ``<link rel="alternate" type="application/rss+xml|atom+xml">``
tags, then tries the paths most sites publish feeds at; a candidate counts only when it parses
as a feed with items. The language is detected from the items' text, not taken from the page.
All fetching goes through the ingest stage's capped, redirect-checked client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx

from pipeline.errors import ParallaxError
from pipeline.records import FeedItem, Outlet
from pipeline.settings import IngestSettings

log = logging.getLogger(__name__)

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json")
COMMON_PATHS = ("/feed", "/rss", "/rss.xml", "/feed.xml", "/atom.xml", "/index.xml", "/rss/")
SAMPLE_ITEMS = 5  # items whose text decides the language
STALE_AFTER_H = 72.0


class DiscoveryError(ParallaxError):
    """No feed found; the message says what was tried."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(
            message,
            fix
            or "give the feed's URL itself in outlets.toml (see `parallax outlets catalog` "
            "for known outlets)",
        )


class _AlternateLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []  # (href, title)
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "link" and "alternate" in a.get("rel", "").lower().split():
            if a.get("type", "").lower().split(";")[0].strip() in FEED_TYPES and a.get("href"):
                self.links.append((a["href"].strip(), a.get("title", "")))
        elif tag == "title" and not self.title:
            self._in_title = True

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False


def feed_links(html: str, base_url: str) -> tuple[list[str], str]:
    """Feed URLs a page declares (absolute, in page order) and the page's title."""
    parser = _AlternateLinks()
    try:
        parser.feed(html)
    except Exception:  # html.parser gives up on some broken markup; what it read still counts
        log.debug("HTML parse stopped early on %s", base_url)
    seen: list[str] = []
    for href, _ in parser.links:
        url = urljoin(base_url, href)
        if urlsplit(url).scheme in ("http", "https") and url not in seen:
            seen.append(url)
    return seen, " ".join(parser.title.split())


@dataclass(frozen=True)
class ParsedFeed:
    url: str  # where it was fetched from (after redirects)
    title: str
    items: list[FeedItem]
    declared_lang: str


def fetch_feed(client: httpx.Client, url: str, settings: IngestSettings) -> ParsedFeed:
    """Fetch and parse one feed; raises FetchError, or DiscoveryError when it is not a feed."""
    import feedparser

    from pipeline.ingest.feeds import parse_feed
    from pipeline.ingest.http import fetch

    got = fetch(client, url, max_bytes=settings.max_feed_bytes)
    probe = Outlet("probe", "probe", "", url)
    items, rejects = parse_feed(
        got.content,
        probe,
        content_type=got.content_type,
        base_url=got.final_url,
        max_items=settings.max_items_per_feed,
        max_bytes=settings.max_feed_bytes,
    )
    if not items:
        reason = rejects[0].reason if rejects else "no items"
        raise DiscoveryError(f"{url} is not a feed with items ({reason})")
    meta = feedparser.parse(got.content).feed
    return ParsedFeed(
        got.final_url, str(meta.get("title", "")), items, str(meta.get("language", ""))[:2]
    )


def items_text(items: list[FeedItem]) -> str:
    return "\n".join(f"{i.title}. {i.summary or i.content}" for i in items[:SAMPLE_ITEMS])


@dataclass(frozen=True)
class Discovered:
    outlet: Outlet
    how: str  # "link rel=alternate" or "common path /feed"
    items: int
    lang_confidence: float


def _slug(url: str) -> str:
    host = (urlsplit(url).hostname or "outlet").lower().removeprefix("www.")
    return host.replace(".", "-")


def discover(
    homepage: str, settings: IngestSettings, *, outlet_id: str = "", allow_private: bool = False
) -> Discovered:
    """The outlet behind a homepage: its feed, name, language (detected from a few items).
    ``allow_private`` lets it reach loopback and private networks (a feed on this machine)."""
    from pipeline.detect.language import detect_language
    from pipeline.ingest.http import FetchError, fetch, make_client

    with make_client(settings, allow_private=allow_private) as client:
        try:
            page = fetch(client, homepage, max_bytes=settings.max_page_bytes)
        except FetchError as exc:
            raise DiscoveryError(
                f"cannot fetch {homepage}: {exc}", "check the address in a browser"
            ) from exc
        html = page.content.decode("utf-8", errors="replace")
        declared, page_title = feed_links(html, page.final_url)
        candidates = [(u, "link rel=alternate") for u in declared]
        candidates += [
            (urljoin(page.final_url, p), f"common path {p}")
            for p in COMMON_PATHS
            if urljoin(page.final_url, p) not in declared
        ]
        tried: list[str] = []
        for url, how in candidates:
            try:
                feed = fetch_feed(client, url, settings)
            except (FetchError, DiscoveryError) as exc:
                tried.append(f"{url} ({exc})")
                continue
            guess = detect_language(items_text(feed.items), hint=feed.declared_lang)
            outlet = Outlet(
                outlet_id=outlet_id or _slug(page.final_url),
                name=feed.title or page_title or _slug(page.final_url),
                lang=guess.lang,
                feed_url=feed.url,
                homepage=page.final_url,
                allow_private=allow_private,
            )
            return Discovered(outlet, how, len(feed.items), guess.confidence)
    raise DiscoveryError(
        f"no feed found for {homepage}; tried {len(tried)}: " + "; ".join(tried[:4])
    )


@dataclass(frozen=True)
class FeedCheck:
    outlet_id: str
    feed_url: str
    ok: bool
    status: str  # "200", or the fetch failure's reason
    items: int
    newest_age_h: float | None
    declared_lang: str
    detected_lang: str
    fix: str  # what to do, "" when nothing


def check_outlet(
    client: httpx.Client, outlet: Outlet, settings: IngestSettings, now: datetime | None = None
) -> FeedCheck:
    """Fetch one configured feed once and say whether it is usable and what to fix."""
    from pipeline.detect.language import detect_language
    from pipeline.ingest.http import FetchError

    base = FeedCheck(outlet.outlet_id, outlet.feed_url, False, "", 0, None, outlet.lang, "", "")
    rediscover = f"find its current feed: `parallax outlets add {outlet.homepage or 'HOMEPAGE'}`"
    try:
        feed = fetch_feed(client, outlet.feed_url, settings)
    except FetchError as exc:
        status = exc.detail.split(" for ")[0] if exc.reason == "http_status" else exc.reason
        return replace(base, status=status, fix=f"{exc.detail or exc.reason}; {rediscover}")
    except DiscoveryError as exc:
        return replace(base, status="not_a_feed", fix=f"{exc}; {rediscover}")
    dates = [i.published_at for i in feed.items if i.published_at]
    now = now or datetime.now(UTC)
    age = (now - max(dates)).total_seconds() / 3600 if dates else None
    detected = detect_language(items_text(feed.items), hint="").lang
    fixes = []
    if detected not in ("und", outlet.lang):
        fixes.append(f'items read as {detected}: set lang = "{detected}" for {outlet.outlet_id}')
    if age is None:
        fixes.append("items carry no dates: their publication time will be unknown")
    elif age > STALE_AFTER_H:
        fixes.append(f"newest item is {age / 24:.0f} days old: the feed may be abandoned")
    return replace(
        base,
        ok=not fixes,
        status="200",
        items=len(feed.items),
        newest_age_h=age,
        detected_lang=detected,
        fix="; ".join(fixes),
    )
