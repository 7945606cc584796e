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
  count as ``duplicates``, as do those :func:`dedupe_articles` drops at the end;
- an item whose link points at a non-public address (or whose page fetch is refused for that)
  is rejected as ``address_not_allowed``, never kept from its feed text: only the outlet's
  declared ``allow_private`` opens private addresses, to its feed and its items alike;
- with the previous :class:`FeedState`, the feed is fetched conditionally: a 304
  (``feeds_not_modified``) or a body with the same hash (``feeds_unchanged``) is not parsed,
  and an outlet still inside a ``Retry-After`` window is not fetched (``feeds_deferred``).
  The new states go out in ``StageResult.feed_states``, persisted by the load.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx

from pipeline.ingest.dedupe import dedupe_articles
from pipeline.ingest.encoding import decode_html
from pipeline.ingest.feeds import FATAL_FEED_REASONS, STAGE, parse_feed
from pipeline.ingest.http import Fetched, FetchError
from pipeline.ingest.netguard import url_host_refused
from pipeline.ingest.pages import Extracted, ExtractError, extract_article
from pipeline.ingest.polite import Crawler
from pipeline.records import (
    Article,
    FeedItem,
    FeedState,
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
    "feeds_not_modified",
    "feeds_unchanged",
    "feeds_deferred",
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
    item: FeedItem, outlet: Outlet, settings: IngestSettings, crawler: Crawler, result: StageResult
) -> tuple[Extracted | None, str, str]:
    """The extracted page, or None with a fallback reason and detail."""
    try:
        fetched = crawler.get(
            item.url,
            allow_private=outlet.allow_private,
            max_bytes=settings.max_page_bytes,
            accept=_PAGE_TYPES,
        )
    except FetchError as exc:
        return None, exc.reason, exc.detail
    result.add("pages_fetched")
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
    crawler: Crawler,
    result: StageResult,
) -> Article | None:
    page: Extracted | None = None
    if not outlet.allow_private:
        why = url_host_refused(item.url)
        if why:
            result.rejects.append(
                Reject(STAGE, outlet.outlet_id, item.url, "address_not_allowed", why)
            )
            return None
    if outlet.fetch_pages:
        page, reason, detail = _fetch_page(item, outlet, settings, crawler, result)
        if page is not None and not reason:
            return _article(item, page.title or item.title, page.text, "page", page)
        if reason == "address_not_allowed":  # the item points inside: no fallback either
            logger.warning("%s: item %s refused (%s)", outlet.outlet_id, item.url, detail)
            result.rejects.append(Reject(STAGE, outlet.outlet_id, item.url, reason, detail))
            return None
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


def _item_outcome(
    item: FeedItem, outlet: Outlet, settings: IngestSettings, crawler: Crawler
) -> tuple[Article | None, StageResult]:
    """One item in a worker thread: its article and its own counts and rejects."""
    local = StageResult(STAGE)
    try:
        return _article_for_item(item, outlet, settings, crawler, local), local
    except Exception as exc:  # a bug met on one item must not lose the outlet's others
        logger.exception("%s: item %s failed", outlet.outlet_id, item.url)
        local.rejects.append(
            Reject(STAGE, outlet.outlet_id, item.url, "item_error", repr(exc)[:500])
        )
        return None, local


def _merge(result: StageResult, local: StageResult) -> None:
    for key, n in local.counts.items():
        result.add(key, n)
    result.rejects.extend(local.rejects)


def _fetch_feed(
    outlet: Outlet,
    settings: IngestSettings,
    crawler: Crawler,
    state: FeedState | None,
) -> Fetched:
    same_feed = state is not None and state.feed_url == outlet.feed_url
    return crawler.get(
        outlet.feed_url,
        allow_private=outlet.allow_private,
        max_bytes=settings.max_feed_bytes,
        etag=state.etag if state is not None and same_feed else None,
        last_modified=state.last_modified if state is not None and same_feed else None,
    )


def _ingest_outlet(
    outlet: Outlet,
    settings: IngestSettings,
    crawler: Crawler,
    pool: ThreadPoolExecutor,
    result: StageResult,
    seen_urls: set[str],
    state: FeedState | None,
) -> list[Article]:
    now = datetime.now(UTC)
    base = state if state is not None else FeedState(outlet.outlet_id, outlet.feed_url)
    if base.feed_url != outlet.feed_url:  # a new feed URL: what was known no longer applies
        base = replace(
            base,
            feed_url=outlet.feed_url,
            etag=None,
            last_modified=None,
            body_sha256=None,
            retry_after=None,
        )
    if base.retry_after is not None and base.retry_after > now:
        logger.info("%s: skipped, asked to wait until %s", outlet.outlet_id, base.retry_after)
        result.add("feeds_deferred")
        return []

    def failed(reason: str, retry_at: datetime | None = None) -> None:
        result.feed_states.append(
            replace(
                base,
                fetched_at=now,
                last_failure_at=now,
                last_failure_reason=reason,
                retry_after=retry_at,
            )
        )

    try:
        fetched = _fetch_feed(outlet, settings, crawler, base)
    except FetchError as exc:
        logger.warning("%s: feed not fetched (%s: %s)", outlet.outlet_id, exc.reason, exc.detail)
        reason = exc.reason if exc.reason == "address_not_allowed" else f"feed_{exc.reason}"
        result.rejects.append(Reject(STAGE, outlet.outlet_id, outlet.feed_url, reason, exc.detail))
        result.add("feeds_failed")
        failed(reason, exc.retry_at if exc.reason == "rate_limited" else None)
        return []
    ok = replace(
        base,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        fetched_at=now,
        last_success_at=now,
        retry_after=None,
    )
    if fetched.not_modified:
        result.add("feeds_not_modified")
        result.feed_states.append(ok)
        return []
    body_sha = hashlib.sha256(fetched.content).hexdigest()
    if body_sha == base.body_sha256:
        result.add("feeds_unchanged")
        result.feed_states.append(ok)
        return []
    items, rejects = parse_feed(
        fetched.content,
        outlet,
        content_type=fetched.content_type,
        base_url=fetched.final_url,
        max_items=settings.max_items_per_feed,
        max_bytes=settings.max_feed_bytes,
    )
    fresh = _new_items(items, rejects, seen_urls, result)
    fatal = [r.reason for r in rejects if r.reason in FATAL_FEED_REASONS]
    if fatal:
        failed(fatal[0])
        return []
    result.feed_states.append(
        replace(ok, body_sha256=body_sha, items_seen=base.items_seen + len(items))
    )
    articles: list[Article] = []
    outcomes = pool.map(lambda item: _item_outcome(item, outlet, settings, crawler), fresh)
    for article, local in outcomes:  # in item order, whatever order the pages arrived in
        _merge(result, local)
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
    feed_states: Mapping[str, FeedState] | None = None,
) -> tuple[list[Article], StageResult]:
    """Fetch every outlet's feed and pages; articles (deduplicated) and a StageResult.

    ``feed_states`` (by outlet id, from the warehouse) makes the feed fetches conditional;
    ``client`` replaces the guarded clients (its owner then answers for where it connects).
    """
    started = time.monotonic()
    result = _new_result()
    articles: list[Article] = []
    seen_urls: set[str] = set()
    states = feed_states or {}
    with (
        Crawler(settings, client=client) as crawler,
        ThreadPoolExecutor(
            max_workers=max(1, settings.fetch_workers), thread_name_prefix="parallax-page"
        ) as pool,
    ):
        for outlet in outlets:
            if progress:
                progress(f"{outlet.outlet_id}: fetching {outlet.feed_url}")
            try:
                found = _ingest_outlet(
                    outlet, settings, crawler, pool, result, seen_urls, states.get(outlet.outlet_id)
                )
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
    kept, dropped = dedupe_articles(articles)
    result.add("duplicates", dropped)
    result.counts["articles"] = len(kept)
    result.seconds = time.monotonic() - started
    logger.info(
        "ingest: %s, %d rejects in %.1fs", result.counts, len(result.rejects), result.seconds
    )
    return kept, result


def feed_files(paths: list[Path]) -> list[Path]:
    """The feed files ``paths`` stand for: files as given, directories' ``*.xml`` (recursive)."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.rglob("*.xml")) if path.is_dir() else [path])
    return files


def _feed_file_articles(
    path: Path, settings: IngestSettings, result: StageResult, seen_urls: set[str]
) -> list[Article]:
    """One feed file's articles; its outcome counted as ``files_parsed`` or ``files_quarantined``."""
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
        result.rejects.append(Reject(STAGE, outlet.outlet_id, outlet.feed_url, reason, str(exc)))
        result.add("feeds_failed")
        result.add("files_quarantined")
        return []
    items, rejects = parse_feed(
        data, outlet, max_items=settings.max_items_per_feed, max_bytes=settings.max_feed_bytes
    )
    fresh = _new_items(items, rejects, seen_urls, result)
    fatal = any(r.reason in FATAL_FEED_REASONS for r in rejects)
    result.add("files_quarantined" if fatal else "files_parsed")
    articles: list[Article] = []
    for item in fresh:
        text = _feed_text(item) or item.title
        if not text:
            result.rejects.append(
                Reject(STAGE, outlet.outlet_id, item.url, "item_no_text", "no title or text")
            )
            continue
        articles.append(_article(item, item.title, text, "feed", None))
    return articles


def ingest_feed_files(
    paths: list[Path], settings: IngestSettings
) -> tuple[list[Article], StageResult]:
    """Articles from RSS/Atom files on disk (one outlet per file, id = file stem), no fetching.

    Directories in ``paths`` stand for their ``*.xml`` files, subdirectories included. Counts
    ``files``, ``files_parsed``, ``files_quarantined`` (the whole file rejected) and
    ``files_crashed`` (an unexpected error, recorded as a ``feed_error`` reject).
    """
    started = time.monotonic()
    result = _new_result()
    articles: list[Article] = []
    seen_urls: set[str] = set()
    for path in feed_files(paths):
        result.add("files")
        try:
            articles.extend(_feed_file_articles(path, settings, result, seen_urls))
        except Exception as exc:  # a parser bug on one file must not end the batch
            logger.exception("%s: feed file failed", path)
            result.rejects.append(
                Reject(STAGE, path.stem, path.resolve().as_uri(), "feed_error", repr(exc)[:500])
            )
            result.add("files_crashed")
    kept, dropped = dedupe_articles(articles)
    result.add("duplicates", dropped)
    result.counts["articles"] = len(kept)
    result.seconds = time.monotonic() - started
    return kept, result
