"""Saved stream state: batches placed from it equal a rebuild, in memory and through DuckDB.

Synthetic he/ar/en streams from the bench (templates with a known event structure, vectors
with e5-like geometry), small and with a short window so that events leave it mid-stream.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bench.bench_events import CachedVectors, Stream, generate_stream, store_stream
from pipeline import warehouse
from pipeline.align.events import _order_key, align_batch, align_events, event_id_for
from pipeline.align.state import align_new, load_state, save_state
from pipeline.settings import AlignSettings, Settings

ALIGN = AlignSettings(window_hours=1.5)  # 300 articles at 2,000/day span ~3.6 h


@pytest.fixture(scope="module")
def stream() -> Stream:
    return generate_stream(300, seed=5)


def _pairs(assignments: list) -> set[tuple[str, str]]:  # type: ignore[type-arg]
    return {(a.article_id, a.event_id) for a in assignments}


def test_batches_from_a_saved_state_equal_a_rebuild(stream: Stream, tmp_path: Path) -> None:
    """State saved to DuckDB and read back between batches: same events, same scores."""
    _, rebuilt, _ = align_events(stream.articles, stream.english, stream.vectors, ALIGN)
    ordered = sorted(stream.articles, key=_order_key)
    import duckdb

    con = duckdb.connect(str(tmp_path / "state.duckdb"))
    warehouse.migrate(con, Settings().schema_dir)
    state = None
    got = []
    sizes = []
    for i, lo in enumerate(range(0, len(ordered), 75)):
        batch, state, _ = align_batch(
            state, ordered[lo : lo + 75], stream.english, stream.vectors, ALIGN
        )
        # members of events this batch folded into others move, as align_new moves stored rows
        got = [replace(a, event_id=state.merged.get(a.event_id, a.event_id)) for a in got]
        got += batch
        save_state(con, state, "fp", full=i == 0)
        loaded = load_state(con, "fp")
        assert loaded is not None
        assert loaded.event_ids == state.event_ids
        state = loaded
        sizes.append(len(state.event_ids))
    assert _pairs(got) == _pairs(rebuilt)
    assert {a.article_id: a.similarity for a in got} == {
        a.article_id: a.similarity for a in rebuilt
    }
    # events leave the window: the saved state stays the size of the window, not the history
    assert max(sizes) < len({a.event_id for a in rebuilt}) / 2
    assert load_state(con, "other settings") is None


def test_a_late_article_is_placed_against_the_events_as_they_are_now(stream: Stream) -> None:
    """The stated condition: an article published before the latest placed one cannot join an
    event that left the window before the state was saved; a rebuild would put it there."""
    ordered = sorted(stream.articles, key=_order_key)
    _, rebuilt, _ = align_events(ordered, stream.english, stream.vectors, ALIGN)
    event_of = {a.article_id: a.event_id for a in rebuilt}
    # a joined article (not a founder) of an early event, held back until the end of the stream
    late = next(a for a in ordered[10:100] if event_of[a.article_id] != event_id_for(a.article_id))
    rest = [a for a in ordered if a.article_id != late.article_id]
    _, first, _ = align_events(rest, stream.english, stream.vectors, ALIGN)
    _, state, _ = align_batch(None, rest, stream.english, stream.vectors, ALIGN)
    assert late.published_at is not None
    assert state.clock_h * 3600 - late.published_at.timestamp() > ALIGN.window_hours * 3600
    placed, _, _ = align_batch(state, [late], stream.english, stream.vectors, ALIGN)
    assert placed[0].event_id != event_of[late.article_id]  # its event had left the window
    assert placed[0].event_id not in {a.event_id for a in first}  # it founds a new one


def _settings(tmp_path: Path, **align: object) -> Settings:
    return replace(
        Settings(),
        warehouse=str(tmp_path / "wh.duckdb"),
        runtime_dir=tmp_path / "var",
        align=replace(ALIGN, **align),  # type: ignore[arg-type]
    )


def test_step_align_reads_only_new_articles_and_equals_a_rebuild(
    stream: Stream, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    ordered = sorted(stream.articles, key=_order_key)
    embedder = CachedVectors()
    with warehouse.open_warehouse(settings) as con:
        store_stream(con, stream, ordered[:180])
        first = align_new(con, settings.align, embedder)
        assert first.counts.get("articles") == 180
        store_stream(con, stream, ordered[180:])
        second = align_new(con, settings.align, embedder)
        # from the saved state: only the 120 new articles are read, nothing is replayed
        assert second.counts.get("articles") == 120
        assert "kept" not in second.counts and "replayed" not in second.counts
        assert align_new(con, settings.align, embedder).counts.get("articles") is None
        incremental = sorted(con.execute("SELECT * FROM event_articles").fetchall())
        events = sorted(con.execute("SELECT * FROM events").fetchall())
        # a rebuild (assignments cleared) replays and gives the same events and members
        warehouse.clear_events(con)
        rebuild = align_new(con, settings.align, embedder)
        assert rebuild.counts.get("articles") == 300
        assert sorted(con.execute("SELECT * FROM event_articles").fetchall()) == incremental
        assert sorted(con.execute("SELECT * FROM events").fetchall()) == events
        # other settings: the saved state is not used, history is replayed once
        changed = _settings(tmp_path, time_decay_hours=24.0)
        again = align_new(con, changed.align, embedder)
        assert again.counts.get("replayed") == 300
        assert sorted(con.execute("SELECT * FROM event_articles").fetchall()) == incremental


def test_undated_articles_from_a_saved_state_are_placed_at_the_clock(
    stream: Stream, tmp_path: Path
) -> None:
    ordered = sorted(stream.articles, key=_order_key)[:60]
    _, state, _ = align_batch(None, ordered[:50], stream.english, stream.vectors, ALIGN)
    undated = [replace(a, published_at=None) for a in ordered[50:]]
    placed, _, _ = align_batch(state, undated, stream.english, stream.vectors, ALIGN)
    _, rebuilt, _ = align_events(ordered[:50] + undated, stream.english, stream.vectors, ALIGN)
    assert _pairs(placed) <= _pairs(rebuilt)


def _merge_stream() -> Stream:
    """An Arabic report, an English one half an hour later under the ar-en bar (its own
    event), and an English article an hour later that clears both: the events merge."""
    import numpy as np

    from bench.bench_events import DIM, START
    from pipeline.records import Article, sha256_text

    def unit(*head: float) -> np.ndarray:
        v = np.zeros(DIM, dtype=np.float32)
        v[: len(head)] = head
        return v / np.linalg.norm(v)

    rows = [("ar", 0.0, (1, 0.5, 0)), ("en", 0.5, (1, 0, 0.5)), ("en", 1.5, (1, 0.1, 0.4))]
    articles, vectors = [], {}
    for i, (lang, hours, head) in enumerate(rows):
        text = f"article {i}"
        a = Article(
            article_id=f"merge{i}",
            outlet_id=f"{lang}_outlet_{i}",
            url=f"http://127.0.0.1/merge/{i}",
            title=f"title {i}",
            published_at=START + timedelta(hours=hours),
            text=text,
            text_source="feed",
            text_sha256=sha256_text(text),
            lang=lang,
            lang_confidence=1.0,
            lang_method="script",
        )
        articles.append(a)
        vectors[a.article_id] = unit(*head)
    return Stream(articles, {}, vectors, {}, 1)


def test_a_merge_relabels_stored_members_and_equals_a_rebuild(tmp_path: Path) -> None:
    merge = _merge_stream()
    settings = _settings(tmp_path, window_hours=72.0)
    embedder = CachedVectors()
    with warehouse.open_warehouse(settings) as con:
        store_stream(con, merge, merge.articles[:2])
        align_new(con, settings.align, embedder)
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(2,)]
        store_stream(con, merge, merge.articles[2:])
        second = align_new(con, settings.align, embedder)
        assert second.counts.get("merged") == 1 and "replayed" not in second.counts
        rows = sorted(con.execute("SELECT article_id, event_id FROM event_articles").fetchall())
        assert {e for _, e in rows} == {event_id_for("merge0")}  # the older event survives
        events = con.execute("SELECT event_id, size, langs FROM events").fetchall()
        assert events == [(event_id_for("merge0"), 3, ["ar", "en"])]
        state = load_state(con, _fingerprint(settings))
        assert state is not None and state.event_ids == (event_id_for("merge0"),)
        warehouse.clear_events(con)
        align_new(con, settings.align, embedder)
        assert (
            sorted(con.execute("SELECT article_id, event_id FROM event_articles").fetchall())
            == rows
        )


def _fingerprint(settings: Settings) -> str:
    from pipeline.align.state import fingerprint

    return fingerprint(settings.align, CachedVectors.name)


@pytest.mark.parametrize("seed", [9])
def test_batches_with_merges_equal_a_rebuild(seed: int) -> None:
    """Streams in which events merge: batches from saved state (in memory) still give the
    events of a rebuild once the members of folded events are relabelled."""
    merging = generate_stream(300, seed=seed)
    _, rebuilt, result = align_events(merging.articles, merging.english, merging.vectors, ALIGN)
    assert result.counts.get("merged")
    ordered = sorted(merging.articles, key=_order_key)
    relabelled = 0
    for size in (40, 75):
        state = None
        got: list = []  # type: ignore[type-arg]
        for lo in range(0, len(ordered), size):
            batch, state, _ = align_batch(
                state, ordered[lo : lo + size], merging.english, merging.vectors, ALIGN
            )
            moved = [replace(a, event_id=state.merged.get(a.event_id, a.event_id)) for a in got]
            relabelled += sum(a != b for a, b in zip(moved, got, strict=True))
            got = moved + batch
        assert _pairs(got) == _pairs(rebuilt)
    assert relabelled  # a merge folded an event whose members an earlier batch had placed


def test_new_articles_are_found_from_the_saved_watermark_and_late_ones_are_not_lost(
    stream: Stream, tmp_path: Path
) -> None:
    """Only articles first seen since the state's watermark are looked up; an article whose
    first_seen_at lies before it (a loader that committed late) does not add up to the count
    of unplaced articles, so all ids are compared and it is found all the same."""
    from datetime import UTC, datetime

    from pipeline.align.state import unplaced_articles

    settings = _settings(tmp_path)
    ordered = sorted(stream.articles, key=_order_key)
    embedder = CachedVectors()
    with warehouse.open_warehouse(settings) as con:
        store_stream(con, stream, ordered[:100])
        align_new(con, settings.align, embedder)
        (since,) = con.execute("SELECT seen_through FROM align_state").fetchall()[0]
        assert since is not None
        store_stream(con, stream, ordered[100:150])
        got = unplaced_articles(con, since)
        assert [a.article_id for a in got] == [a.article_id for a in ordered[100:150]]
        late = ordered[150]
        store_stream(con, stream, [late])
        con.execute(
            "UPDATE articles SET first_seen_at = ? WHERE article_id = ?",
            [datetime(2000, 1, 1, tzinfo=UTC), late.article_id],
        )
        got = unplaced_articles(con, since)
        assert late.article_id in {a.article_id for a in got} and len(got) == 51
        placed = align_new(con, settings.align, embedder)
        assert placed.counts.get("articles") == 51 and "replayed" not in placed.counts
        assert unplaced_articles(con, since) == []
