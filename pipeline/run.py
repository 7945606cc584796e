"""Wiring of the stages over the warehouse, shared by the CLI and the Airflow DAGs.

Each step reads what it needs from the warehouse and writes its output back, so any step can
be re-run alone (`parallax translate` fills in what a run without models left pending) and a
second run of a step changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import warehouse
from pipeline.records import Article, FeedState, Outlet, StageResult
from pipeline.settings import Settings

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    stages: list[StageResult] = field(default_factory=list)

    def counts(self, stage: str) -> dict[str, int]:
        for res in self.stages:
            if res.stage == stage:
                return res.counts
        return {}


def step_ingest(
    outlets: Sequence[Outlet],
    settings: Settings,
    *,
    feed_states: Mapping[str, FeedState] | None = None,
) -> tuple[list[Article], StageResult]:
    """Fetch feeds and pages, extract and detect language. Writes no database: the previous
    feed states (for conditional GET) are read read-only unless given; the new ones travel in
    the result for :func:`step_load_articles`."""
    from pipeline.detect import detect_articles
    from pipeline.ingest import ingest_outlets

    t0 = time.perf_counter()
    if feed_states is None:
        feed_states = warehouse.read_feed_states(settings)
    articles, result = ingest_outlets(list(outlets), settings.ingest, feed_states=feed_states)
    articles, detect_result = detect_articles(
        articles, outlet_langs={o.outlet_id: o.lang for o in outlets}
    )
    for key, n in detect_result.counts.items():
        result.add(f"detect_{key}", n)
    result.rejects.extend(detect_result.rejects)
    result.seconds = time.perf_counter() - t0
    return articles, result


def step_ingest_files(
    paths: Sequence[Path], settings: Settings
) -> tuple[list[Article], StageResult]:
    """Ingest saved feed files (one outlet each, text from the feed), then detect language."""
    from pipeline.detect import detect_articles
    from pipeline.ingest import ingest_feed_files

    articles, result = ingest_feed_files(list(paths), settings.ingest)
    articles, _ = detect_articles(articles)
    return articles, result


def step_load_articles(
    con: duckdb.DuckDBPyConnection,
    outlets: Sequence[Outlet],
    articles: Sequence[Article],
    result: StageResult | None = None,
) -> StageResult:
    t0 = time.perf_counter()
    res = StageResult("load")
    warehouse.upsert_outlets(con, outlets)
    loaded = warehouse.load_articles(con, articles)
    if result is not None:
        warehouse.load_rejects(con, result.rejects)
        # after the articles: a crash before this line re-fetches the feed, never skips it
        warehouse.load_feed_states(con, result.feed_states)
    res.add("new", len(loaded.new))
    res.add("edited", len(loaded.edited))
    res.add("unchanged", loaded.unchanged)
    res.add("duplicates", loaded.duplicates)
    res.seconds = time.perf_counter() - t0
    return res


def step_segment(con: duckdb.DuckDBPyConnection, settings: Settings) -> StageResult:
    """Segment every article that has no segments yet (new or edited articles)."""
    from pipeline.segment import segment_articles

    t0 = time.perf_counter()
    articles = warehouse.articles_without_segments(con)
    segments, result = segment_articles(articles)
    warehouse.load_segments(con, segments)
    result.seconds = time.perf_counter() - t0
    return result


def step_translate(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> StageResult:
    """Translate every segment that has no translation yet; a missing model leaves them pending."""
    from pipeline.translate import translate_segments
    from pipeline.translate.cache import DuckDBTranslationCache

    pending = warehouse.segments_without_translation(con)
    cache = DuckDBTranslationCache(con)
    t0 = time.perf_counter()
    # Each chunk is loaded as it is done: memory stays flat and a crash keeps finished chunks.
    _, result = translate_segments(
        pending,
        settings,
        cache,
        progress=progress,
        on_chunk=lambda rows: warehouse.load_translations(con, rows),
    )
    result.seconds = time.perf_counter() - t0
    return result


def step_align(con: duckdb.DuckDBPyConnection, settings: Settings) -> StageResult:
    """Assign articles not yet in an event; articles already placed keep their event.

    Reads only the new articles and the saved stream state (pipeline/align/state.py); the
    first run, or one after the settings or the assignments changed, replays history once.
    """
    from pipeline.align.state import align_new
    from pipeline.align.vectors import get_embedder

    t0 = time.perf_counter()
    result = align_new(con, settings.align, get_embedder(settings.align.embedder))
    result.seconds = time.perf_counter() - t0
    return result


def step_link(con: duckdb.DuckDBPyConnection, settings: Settings) -> StageResult:
    """Sentence links, divergences and unique statements inside events (rewritten per event)."""
    from pipeline.align.sentences import link_events
    from pipeline.align.vectors import get_embedder

    t0 = time.perf_counter()
    result = link_events(con, None, get_embedder(settings.align.embedder))
    result.seconds = time.perf_counter() - t0
    return result


def step_watch(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    *,
    sender: Callable[..., None] | None = None,
) -> StageResult:
    """After a load: refresh the search index, record each watch's new alerts (exactly once)
    and deliver every pending alert, retrying earlier failures. `sender` replaces the direct
    webhook/email/file send (the Airflow task passes a BaseNotifier-backed one)."""
    from pipeline.search.lexical import refresh_index
    from pipeline.watch.matcher import match_all
    from pipeline.watch.notifiers import deliver_pending
    from pipeline.watch.store import list_watches

    t0 = time.perf_counter()
    result = StageResult("watch")
    refresh = refresh_index(con)
    result.add("indexed", refresh.changed)
    watches = list_watches(con)
    if watches:
        from pipeline.align.vectors import get_embedder

        needs_vectors = any(w.mode != "lexical" for w in watches)
        embedder = get_embedder(settings.align.embedder) if needs_vectors else None
        for m in match_all(con, embedder, semantic_floor=settings.watch.semantic_min_score):
            result.add("alerts", len(m.new_alerts))
            result.add("held_back", m.held_back)
    delivered = deliver_pending(con, settings.watch, sender)
    result.add("sent", delivered.sent)
    result.add("send_failed", delivered.failed)
    result.seconds = time.perf_counter() - t0
    return result


def step_report(con: duckdb.DuckDBPyConnection, settings: Settings) -> StageResult:
    """Refresh the report site under the runtime folder (only files whose bytes changed)."""
    from pipeline.report import build_site, report_dir

    site = build_site(con, report_dir(settings))
    result = StageResult("report")
    result.add("events", site.events)
    result.add("written", len(site.written))
    result.add("unchanged", site.unchanged)
    result.add("removed", len(site.removed))
    result.seconds = site.seconds
    return result


def run_all(
    outlets: Sequence[Outlet],
    settings: Settings,
) -> RunSummary:
    """The whole pipeline once: ingest, load, segment, translate, align, link, report."""
    summary = RunSummary()
    articles, ingest_result = step_ingest(outlets, settings)
    summary.stages.append(ingest_result)
    with warehouse.open_warehouse(settings) as con:
        summary.stages.append(step_load_articles(con, outlets, articles, ingest_result))
        summary.stages.append(step_segment(con, settings))
        summary.stages.append(step_translate(con, settings))
        summary.stages.append(step_align(con, settings))
        summary.stages.append(step_link(con, settings))
        summary.stages.append(step_watch(con, settings))
        summary.stages.append(step_report(con, settings))
    return summary


def warehouse_summary(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    """The figures the demo's last line reports, read back from the warehouse."""
    langs = [
        r[0]
        for r in con.execute(
            "SELECT lang FROM articles GROUP BY lang ORDER BY count(*) DESC, lang"
        ).fetchall()
    ]
    counts = warehouse.table_counts(con, ["articles", "segments", "events"])
    translated = con.execute(
        "SELECT count(DISTINCT (article_id, seg_no)) FROM translations WHERE model_id <> 'identity'"
    ).fetchall()[0][0]
    pending = con.execute("SELECT count(*) FROM pending_translations").fetchall()[0][0]
    return {
        "articles": counts["articles"],
        "languages": ",".join(langs),
        "segments": counts["segments"],
        "translated": int(translated),
        "pending": int(pending),
        "events": counts["events"],
    }
