"""The ingest stage: outlets' feeds (and article pages) to :class:`Article` records.

One failing outlet, feed, page or item gives a Reject with a reason code and the batch goes on.
Decisions worth knowing:

- a page that cannot be fetched or extracted, or yields fewer than ``min_text_chars``, falls back
  to the feed item's own text (content, else summary) with ``text_source="feed"``; the page's
  problem is recorded as a Reject ``page_<reason>`` (the article itself is kept) and counted in
  ``page_fallbacks`` and ``page_fallback_<reason>``;
- a title alone is not an article when the outlet promises pages (``fetch_pages=True``): if the
  page fails and the feed has only a title, the item is rejected as ``item_no_text``. For
  feed-only outlets (``fetch_pages=False``) and feed files the title is all the outlet publishes,
  so it is kept as the text;
- the same canonical URL seen twice (in one feed or across feeds) is fetched once; later copies
  count as ``duplicates``, as do those :func:`dedupe_articles` drops at the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from pipeline.ingest.dedupe import dedupe_articles
from pipeline.ingest.encoding import decode_html
from pipeline.ingest.feeds import FATAL_FEED_REASONS, STAGE, parse_feed
from pipeline.ingest.http import FetchError, fetch, make_client
from pipeline.ingest.pages import Extracted, ExtractError, extract_article
from pipeline.records import (
    Article,
    FeedItem,
    Outlet,
    Reject,
    StageResult,
    article_id_for,
    sha256_text,
)
from pipeline.settings import IngestSettings

logger = logging.getLogger(__name__)

COUNT_KEYS = (
    "feeds_ok",
    "feeds_failed",
    "items",
    "pages_fetched",
    "page_fallbacks",
    "articles",
    "duplicates",
)
_PAGE_TYPES = ("html", "xml", "text/plain")


def _new_result() -> StageResult:
    return StageResult(stage=STAGE, counts=dict.fromkeys(COUNT_KEYS, 0))


def _feed_text(item: FeedItem) -> str:
    """The longer of the item's content and summary (some feeds put the article in either)."""
    return max((item.content, item.summary), key=len)


def _fetch_page(
    item: FeedItem, settings: IngestSettings, client: httpx.Client, result: StageResult
) -> tuple[Extracted | None, str, str]:
    """The extracted page, or None with a fallback reason and detail."""
    try:
        fetched = fetch(client, item.url, max_bytes=settings.max_page_bytes)
    except FetchError as exc:
        return None, exc.reason, exc.detail
    result.add("pages_fetched")
    ctype = (fetched.content_type or "").lower()
    if ctype and not any(t in ctype for t in _PAGE_TYPES):
        return None, "not_html", f"Content-Type {fetched.content_type!r}"
    html = decode_html(fetched.content, fetched.content_type)
    try:
        page = extract_article(html, fetched.final_url)
    except ExtractError as exc:
        return None, exc.reason, exc.detail
    if len(page.text) < settings.min_text_chars:
        return page, "short_text", f"{len(page.text)} chars < {settings.min_text_chars}"
    return page, "", ""


def _article(item: FeedItem, title: str, text: str, source: str, page: Extracted | None) -> Article:
    published = item.published_at or (page.published_at if page else None)
    return Article(
        article_id=article_id_for(item.url),
        outlet_id=item.outlet_id,
        url=item.url,
        title=title,
        published_at=published,
        text=text,
        text_source=source,
        text_sha256=sha256_text(text),
    )


def _article_for_item(
    item: FeedItem,
    outlet: Outlet,
    settings: IngestSettings,
    client: httpx.Client,
    result: StageResult,
) -> Article | None:
    page: Extracted | None = None
    if outlet.fetch_pages:
        page, reason, detail = _fetch_page(item, settings, client, result)
        if page is not None and not reason:
            return _article(item, page.title or item.title, page.text, "page", page)
        result.add("page_fallbacks")
        result.add(f"page_fallback_{reason}")
        logger.warning(
            "%s: page %s unusable (%s: %s); using feed text",
            outlet.outlet_id,
            item.url,
            reason,
            detail,
        )
        result.rejects.append(
            Reject(
                STAGE,
                outlet.outlet_id,
                item.url,
                f"page_{reason}",
                f"{detail}; fell back to the feed text",
            )
        )
    feed_text = _feed_text(item)
    if feed_text and (page is None or len(feed_text) >= len(page.text)):
        return _article(item, item.title, feed_text, "feed", page)
    if page is not None and page.text:
        return _article(item, page.title or item.title, page.text, "page", page)
    if not outlet.fetch_pages and item.title:
        return _article(item, item.title, item.title, "feed", page)
    result.rejects.append(
        Reject(
            STAGE,
            outlet.outlet_id,
            item.url,
            "item_no_text",
            "no page text and no text in the feed item",
        )
    )
    return None


def _ingest_outlet(
    outlet: Outlet,
    settings: IngestSettings,
    client: httpx.Client,
    result: StageResult,
    seen_urls: set[str],
) -> list[Article]:
    try:
        fetched = fetch(client, outlet.feed_url, max_bytes=settings.max_feed_bytes)
    except FetchError as exc:
        logger.warning("%s: feed not fetched (%s: %s)", outlet.outlet_id, exc.reason, exc.detail)
        result.rejects.append(
            Reject(STAGE, outlet.outlet_id, outlet.feed_url, f"feed_{exc.reason}", exc.detail)
        )
        result.add("feeds_failed")
        return []
    items, rejects = parse_feed(
        fetched.content,
        outlet,
        content_type=fetched.content_type,
        base_url=fetched.final_url,
        max_items=settings.max_items_per_feed,
        max_bytes=settings.max_feed_bytes,
    )
    articles: list[Article] = []
    for item in _new_items(items, rejects, seen_urls, result):
        try:
            article = _article_for_item(item, outlet, settings, client, result)
        except Exception as exc:  # a bug met on one item must not lose the outlet's others
            logger.exception("%s: item %s failed", outlet.outlet_id, item.url)
            result.rejects.append(
                Reject(STAGE, outlet.outlet_id, item.url, "item_error", repr(exc)[:500])
            )
            continue
        if article is not None:
            articles.append(article)
    return articles


def _new_items(
    items: list[FeedItem], rejects: list[Reject], seen_urls: set[str], result: StageResult
) -> list[FeedItem]:
    """Count a parsed feed's outcome; its items whose URL no earlier feed item had.

    A feed with a fatal reject counts as failed and yields nothing."""
    result.rejects.extend(rejects)
    if any(r.reason in FATAL_FEED_REASONS for r in rejects):
        result.add("feeds_failed")
        return []
    result.add("feeds_ok")
    fresh: list[FeedItem] = []
    for item in items:
        result.add("items")
        if item.url in seen_urls:
            result.add("duplicates")
            continue
        seen_urls.add(item.url)
        fresh.append(item)
    return fresh


def ingest_outlets(
    outlets: list[Outlet],
    settings: IngestSettings,
    *,
    client: httpx.Client | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[Article], StageResult]:
    """Fetch every outlet's feed and pages; articles (deduplicated) and a StageResult."""
    started = time.monotonic()
    result = _new_result()
    own_client = client is None
    http = client if client is not None else make_client(settings)
    articles: list[Article] = []
    seen_urls: set[str] = set()
    try:
        for outlet in outlets:
            if progress:
                progress(f"{outlet.outlet_id}: fetching {outlet.feed_url}")
            try:
                found = _ingest_outlet(outlet, settings, http, result, seen_urls)
            except Exception as exc:  # never let one outlet take the batch down
                logger.exception("%s: outlet failed", outlet.outlet_id)
                result.rejects.append(
                    Reject(
                        STAGE, outlet.outlet_id, outlet.feed_url, "outlet_error", repr(exc)[:500]
                    )
                )
                result.add("feeds_failed")
                continue
            articles.extend(found)
            if progress:
                progress(f"{outlet.outlet_id}: {len(found)} articles")
    finally:
        if own_client:
            http.close()
    kept, dropped = dedupe_articles(articles)
    result.add("duplicates", dropped)
    result.counts["articles"] = len(kept)
    result.seconds = time.monotonic() - started
    logger.info(
        "ingest: %s, %d rejects in %.1fs", result.counts, len(result.rejects), result.seconds
    )
    return kept, result


def _feed_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.xml")) if path.is_dir() else [path])
    return files


def ingest_feed_files(
    paths: list[Path], settings: IngestSettings
) -> tuple[list[Article], StageResult]:
    """Articles from RSS/Atom files on disk (one outlet per file, id = file stem), no fetching.

    Directories in ``paths`` stand for their ``*.xml`` files.
    """
    started = time.monotonic()
    result = _new_result()
    articles: list[Article] = []
    seen_urls: set[str] = set()
    for path in _feed_files(paths):
        outlet = Outlet(
            outlet_id=path.stem,
            name=path.stem,
            lang="",
            feed_url=path.resolve().as_uri(),
            fetch_pages=False,
        )
        try:
            size = path.stat().st_size
            if size > settings.max_feed_bytes:
                raise ValueError(f"{size} bytes > {settings.max_feed_bytes}")
            data = path.read_bytes()
        except (OSError, ValueError) as exc:
            reason = "feed_too_large" if isinstance(exc, ValueError) else "feed_unreadable"
            logger.warning("%s: %s (%s)", path, reason, exc)
            result.rejects.append(
                Reject(STAGE, outlet.outlet_id, outlet.feed_url, reason, str(exc))
            )
            result.add("feeds_failed")
            continue
        items, rejects = parse_feed(
            data, outlet, max_items=settings.max_items_per_feed, max_bytes=settings.max_feed_bytes
        )
        for item in _new_items(items, rejects, seen_urls, result):
            text = _feed_text(item) or item.title
            if not text:
                result.rejects.append(
                    Reject(STAGE, outlet.outlet_id, item.url, "item_no_text", "no title or text")
                )
                continue
            articles.append(_article(item, item.title, text, "feed", None))
    kept, dropped = dedupe_articles(articles)
    result.add("duplicates", dropped)
    result.counts["articles"] = len(kept)
    result.seconds = time.monotonic() - started
    return kept, result
