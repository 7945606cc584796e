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

from pipeline import faults, warehouse
from pipeline.records import Article, FeedState, Outlet, StageResult, Translation
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
    from pipeline.align.vectors import embedder_for

    t0 = time.perf_counter()
    result = align_new(con, settings.align, embedder_for(settings.align))
    result.seconds = time.perf_counter() - t0
    return result


def step_link(con: duckdb.DuckDBPyConnection, settings: Settings) -> StageResult:
    """Sentence links, divergences and unique statements of the events whose inputs changed
    since their last link (members, texts, English, settings), over one open connection."""
    from pipeline.align.sentences import link_events
    from pipeline.align.vectors import embedder_for

    t0 = time.perf_counter()
    embedder = embedder_for(settings.align)
    result = link_events(con, None, embedder, only_changed=True)
    result.seconds = time.perf_counter() - t0
    return result


def step_link_apart(settings: Settings) -> StageResult:
    """`step_link` with the file held only to read the changed events' inputs and to write
    their links: the scoring (and any sentence embedding) runs with no database open."""
    from pipeline.align.sentences import compute_links, read_link_inputs
    from pipeline.align.vectors import embedder_for

    t0 = time.perf_counter()
    result = StageResult("link")
    embedder = embedder_for(settings.align)
    if embedder is None:
        log.warning("link: no embedder; sentence links and divergences are not computed")
        result.add("skipped_no_embedder")
        return result
    with warehouse.open_warehouse(settings, read_only=True, purpose="link: read") as con:
        inputs = read_link_inputs(con, None, embedder, only_changed=True)
    if inputs.skipped:
        result.add("events_unchanged", inputs.skipped)
    output = compute_links(inputs, embedder, result)
    with warehouse.open_warehouse(settings, purpose="link: write") as con:
        warehouse.load_links(con, output)
    result.seconds = time.perf_counter() - t0
    log.info("link: %s in %.1fs", result.counts, result.seconds)
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
    from pipeline.search.index_store import search_index
    from pipeline.search.lexical import refresh_index
    from pipeline.watch.matcher import match_all
    from pipeline.watch.notifiers import deliver_pending
    from pipeline.watch.store import list_watches

    t0 = time.perf_counter()
    result = StageResult("watch")
    with search_index(con, settings):  # on a DuckLake: the local index cache beside the lake
        refresh = refresh_index(con)
        result.add("indexed", refresh.changed)
        watches = list_watches(con)
        if watches:
            from pipeline.align.vectors import embedder_for

            needs_vectors = any(w.mode != "lexical" for w in watches)
            embedder = embedder_for(settings.align) if needs_vectors else None
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
    result.add("loaded", site.loaded)
    result.add("written", len(site.written))
    result.add("unchanged", site.unchanged)
    result.add("removed", len(site.removed))
    result.seconds = site.seconds
    return result


# ---------------------------------------------------------------- short holds
# DuckDB locks the whole file for as long as a connection is open, so an analyst's query (or
# another load) waits for every second a step keeps it. The steps below read in one short
# connection, do their slow work (segmenting, models, embedding) with no database open, and
# write in another short one; only align's clustering still runs inside a connection.


def step_segment_apart(settings: Settings) -> StageResult:
    """`step_segment` with the file held only to read the articles and to write the segments."""
    from pipeline.segment import segment_articles

    t0 = time.perf_counter()
    with warehouse.open_warehouse(settings, read_only=True, purpose="segment: read") as con:
        articles = warehouse.articles_without_segments(con)
    segments, result = segment_articles(articles)
    if segments:
        with warehouse.open_warehouse(settings, purpose="segment: write") as con:
            warehouse.load_segments(con, segments)
    result.seconds = time.perf_counter() - t0
    return result


def step_translate_apart(
    settings: Settings, *, progress: Callable[[int, int], None] | None = None
) -> StageResult:
    """`step_translate` with the models run while no database is open: one short read of the
    pending segments and their cached sentences, then one short write per finished chunk
    (translations and new cache entries in one transaction), then the failures as rejects."""
    from pipeline.records import sha256_text
    from pipeline.translate import translate_segments
    from pipeline.translate.cache import SnapshotCache

    t0 = time.perf_counter()
    with warehouse.open_warehouse(settings, read_only=True, purpose="translate: read") as con:
        pending = warehouse.segments_without_translation(con)
        hashes = sorted({sha256_text(s.text) for s in pending})
        cached = con.execute(
            "SELECT model_id, source_sha256, text_en FROM translation_cache "
            "WHERE source_sha256 IN (SELECT unnest(?::VARCHAR[]))",
            [hashes],
        ).fetchall()
    cache = SnapshotCache(cached)

    def load_chunk(rows: list[Translation]) -> None:
        with warehouse.open_warehouse(settings, purpose="translate: load chunk") as con:
            warehouse.load_translation_chunk(con, rows, cache.take_new())

    _, result = translate_segments(pending, settings, cache, progress=progress, on_chunk=load_chunk)
    if result.rejects:
        with warehouse.open_warehouse(settings, purpose="translate: rejects") as con:
            warehouse.load_rejects(con, result.rejects)
    result.seconds = time.perf_counter() - t0
    return result


def step_embed(settings: Settings) -> StageResult:
    """Article vectors for align, computed with no database open: a short read of the articles
    and their cached vectors, the embedder over those missing or changed, a short write of
    `article_vectors`. `step_align` then finds every vector cached and only clusters."""
    from pipeline.align.vector_cache import embed_articles, load_vectors, store_vectors
    from pipeline.align.vectors import article_embedding_text, embedder_for
    from pipeline.records import sha256_text

    t0 = time.perf_counter()
    result = StageResult("embed")
    embedder = embedder_for(settings.align)
    if embedder is None:
        result.add("skipped_no_embedder")
        return result
    with warehouse.open_warehouse(settings, read_only=True, purpose="embed: read") as con:
        articles = warehouse.fetch_articles(con)
        cached = load_vectors(con, embedder.name, [a.article_id for a in articles])
    digests = {a.article_id: sha256_text(article_embedding_text(a)) for a in articles}
    todo = [
        a
        for a in articles
        if (hit := cached.get(a.article_id)) is None
        or hit[0] != digests[a.article_id]
        or hit[1].shape != (embedder.dim,)
    ]
    del cached
    vectors = embed_articles(todo, embedder, None) if todo else {}
    rows = [(aid, digests[aid], vec) for aid, vec in vectors.items()]
    if rows:
        with warehouse.open_warehouse(settings, purpose="embed: write") as con:
            store_vectors(con, embedder.name, rows)
    result.add("embedded", len(rows))
    result.add("cached", len(articles) - len(todo))
    result.seconds = time.perf_counter() - t0
    return result


_EVENT_SEGMENTS = """
WITH m AS (
    SELECT ea.event_id, ea.article_id, a.outlet_id
    FROM event_articles ea JOIN articles a USING (article_id)
), multi AS (
    SELECT event_id FROM m GROUP BY event_id HAVING count(DISTINCT outlet_id) > 1
)
SELECT s.article_id, s.seg_no, s.text, v.text_sha256, v.vector IS NOT NULL
    AND len(v.vector) = ?
FROM segments s
LEFT JOIN segment_vectors v ON v.article_id = s.article_id AND v.seg_no = s.seg_no
    AND v.embedder = ?
WHERE s.article_id IN (SELECT article_id FROM m WHERE event_id IN (SELECT event_id FROM multi))
ORDER BY s.article_id, s.seg_no
"""


def step_embed_segments(settings: Settings) -> StageResult:
    """Sentence vectors for link (segments of events covered by more than one outlet), computed
    with no database open, so `step_link` finds them cached."""
    import numpy as np

    from pipeline.align.vectors import embedder_for
    from pipeline.records import sha256_text

    t0 = time.perf_counter()
    result = StageResult("embed_segments")
    embedder = embedder_for(settings.align)
    if embedder is None:
        result.add("skipped_no_embedder")
        return result
    with warehouse.open_warehouse(settings, read_only=True, purpose="embed segments: read") as con:
        rows = con.execute(_EVENT_SEGMENTS, [embedder.dim, embedder.name]).fetchall()
    todo = [
        (aid, seg, text, sha256_text(text))
        for aid, seg, text, digest, ok in rows
        if text.strip() and not (ok and digest == sha256_text(text))
    ]
    result.add("cached", len(rows) - len(todo))
    if todo:
        todo.sort(key=lambda t: (len(t[2]), t[0], t[1]))
        vecs = embedder.embed([t[2] for t in todo]).astype(np.float32)
        rows = [
            (aid, seg, embedder.name, digest, vec)
            for (aid, seg, _, digest), vec in zip(todo, vecs, strict=True)
        ]
        with (
            warehouse.open_warehouse(settings, purpose="embed segments: write") as con,
            warehouse.transaction(con),
        ):
            warehouse.upsert_segment_vectors(con, rows)
    result.add("embedded", len(todo))
    result.seconds = time.perf_counter() - t0
    return result


# ---------------------------------------------------------------- the whole run


@dataclass
class RunContext:
    """What the steps of one run share: the inputs, and the ingested batch until it is loaded."""

    outlets: list[Outlet]
    settings: Settings
    feeds: list[Path] | None = None  # saved feed files instead of fetching the outlets' feeds
    progress: Callable[[str, int, int], None] | None = None  # (stage, done, total)
    articles: list[Article] = field(default_factory=list)
    ingest: StageResult | None = None


RunStep = Callable[[RunContext], StageResult]


def _run_ingest(ctx: RunContext) -> StageResult:
    if ctx.feeds is not None:
        ctx.articles, ctx.ingest = step_ingest_files(ctx.feeds, ctx.settings)
    else:
        ctx.articles, ctx.ingest = step_ingest(ctx.outlets, ctx.settings)
    return ctx.ingest


def _run_load(ctx: RunContext) -> StageResult:
    with warehouse.open_warehouse(ctx.settings, purpose="load") as con:
        result = step_load_articles(con, ctx.outlets, ctx.articles, ctx.ingest)
    ctx.articles = []  # loaded: the later steps read the warehouse
    return result


def _run_translate(ctx: RunContext) -> StageResult:
    report = ctx.progress
    return step_translate_apart(
        ctx.settings,
        progress=None if report is None else (lambda done, total: report("translate", done, total)),
    )


def _run_align(ctx: RunContext) -> StageResult:
    with warehouse.open_warehouse(ctx.settings, purpose="align") as con:
        return step_align(con, ctx.settings)


def _run_watch(ctx: RunContext) -> StageResult:
    with warehouse.open_warehouse(ctx.settings, purpose="watch") as con:
        return step_watch(con, ctx.settings)


def _run_report(ctx: RunContext) -> StageResult:
    with warehouse.open_warehouse(ctx.settings, read_only=True, purpose="report") as con:
        return step_report(con, ctx.settings)


# The stage sequence of `run_all` (and so of `parallax run` and `parallax demo`). A new stage
# is one more entry: a name and a function of the RunContext returning its StageResult, which
# opens the warehouse itself for as short a time as it can.
RUN_STEPS: list[tuple[str, RunStep]] = [
    ("ingest", _run_ingest),
    ("load", _run_load),
    ("segment", lambda ctx: step_segment_apart(ctx.settings)),
    ("translate", _run_translate),
    ("embed", lambda ctx: step_embed(ctx.settings)),
    ("align", _run_align),
    ("embed_segments", lambda ctx: step_embed_segments(ctx.settings)),
    ("link", lambda ctx: step_link_apart(ctx.settings)),
    ("watch", _run_watch),
    ("report", _run_report),
]


def run_all(
    outlets: Sequence[Outlet],
    settings: Settings,
    *,
    feeds: Sequence[Path] | None = None,
    on_start: Callable[[str], None] | None = None,
    on_done: Callable[[StageResult], None] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    steps: Sequence[tuple[str, RunStep]] | None = None,
) -> RunSummary:
    """The whole pipeline once: every entry of RUN_STEPS in order (ingest, load, segment,
    translate, embed, align, link, watch, report). `on_start(name)` and `on_done(result)` frame each stage
    and `progress(stage, done, total)` reports within one, so the CLI shows progress over the
    very sequence the library runs. With `feeds`, saved feed files replace fetching."""
    summary = RunSummary()
    ctx = RunContext(
        list(outlets), settings, None if feeds is None else list(feeds), progress=progress
    )
    for name, step in steps if steps is not None else RUN_STEPS:
        faults.point(f"run.before.{name}")
        if on_start is not None:
            on_start(name)
        result = step(ctx)
        summary.stages.append(result)
        if on_done is not None:
            on_done(result)
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
