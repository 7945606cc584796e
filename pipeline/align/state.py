"""Event alignment that reads only new articles and the active window: the stream state is kept
in the warehouse (`align_state*`, migration 007) between runs.

A run loads the saved state (events active at the stream's clock with their centroid and
lexical sums, and the document frequencies), places the articles that have no event yet, and
saves what changed. Its cost follows the batch and the window, not the history: a monitor that
has stored 700k articles does the same work per batch as one that has stored 1k.

The saved state is used only when it is certainly the one a replay would rebuild: it records
the settings and embedder it was built with and how many assignments `event_articles` held
when it was saved. Anything else (first run, new settings or embedder, `align --rebuild`,
assignments cleared or written by another program, a run that died between its two
transactions) makes the run replay all stored articles once, as `align_events` always did, and
save a fresh state. For when the result equals a rebuild, see `pipeline.align.events.align_batch`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from pipeline import warehouse
from pipeline.align.events import (
    StreamState,
    align_batch,
    align_events_with_state,
    build_event,
    collector_paused,
)
from pipeline.records import Article, Event, EventArticle, StageResult

if TYPE_CHECKING:
    import duckdb

    from pipeline.align.vectors import Embedder
    from pipeline.settings import AlignSettings

log = logging.getLogger(__name__)

# Bump when the meaning of the saved state changes (scoring inputs, lexical encoding): a saved
# state of another format is ignored and rebuilt by a replay. 2: time from the event's first
# report, same-language rule, merge pass.
STATE_FORMAT = 2
_EVENTS_IN = "_parallax_align_events_in"
_GROUPS_IN = "_parallax_align_groups_in"


def fingerprint(settings: AlignSettings, embedder_name: str) -> str:
    """What a saved state depends on; a state saved under another fingerprint is not used."""
    return json.dumps(
        {"format": STATE_FORMAT, "embedder": embedder_name, "settings": asdict(settings)},
        sort_keys=True,
    )


def _placed_count(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM event_articles").fetchall()[0][0])


def load_state(con: duckdb.DuckDBPyConnection, fp: str) -> StreamState | None:
    """The saved state, or None when there is none or it may not match the assignments."""
    row = con.execute(
        "SELECT fingerprint, placed, clock_h, n_docs, df_indices, df_values FROM align_state"
    ).fetchall()
    if not row:
        return None
    saved_fp, placed, clock_h, n_docs, df_indices, df_values = row[0]
    if saved_fp != fp:
        log.info("align: settings or embedder changed since the state was saved; replaying")
        return None
    if int(placed) != _placed_count(con):
        log.info("align: assignments changed outside the align state; replaying")
        return None
    events = con.execute(
        "SELECT event_id, first_h, last_h, size, lex_indices, lex_values "
        "FROM align_state_events ORDER BY ordinal, event_id"
    ).to_arrow_table()
    # in storage order (sorting 10 MB of sums in SQL costs more than permuting them here)
    groups = con.execute(
        "SELECT event_id, lang, ordinal, n, vec_sum FROM align_state_groups"
    ).to_arrow_table()
    groups = groups.take(np.argsort(_numbers(groups.column("ordinal")), kind="stable"))
    event_ids = tuple(events.column("event_id").to_pylist())
    position = {eid: i for i, eid in enumerate(event_ids)}
    lex_i, has_lex, offsets = _flat_blobs(events.column("lex_indices"), np.int32)
    lex_v, _, _ = _flat_blobs(events.column("lex_values"), np.float64)
    sums, _, _ = _flat_blobs(groups.column("vec_sum"), np.float64)
    counts = _numbers(groups.column("n")).astype(np.int64)
    dim = len(sums) // int(np.count_nonzero(counts)) if counts.any() else 0
    if dim and counts.all():
        group_sums = sums.reshape(-1, dim)
    else:
        group_sums = np.zeros((len(counts), dim))
        group_sums[counts > 0] = sums.reshape(-1, dim) if dim else 0.0
    return StreamState(
        event_ids=event_ids,
        first_h=_numbers(events.column("first_h")),
        last_h=_numbers(events.column("last_h")),
        size=_numbers(events.column("size")).astype(np.int64),
        has_lex=has_lex,
        lex_offsets=offsets,
        lex_indices=lex_i.astype(np.int32),
        lex_values=lex_v.astype(np.float64),
        group_event=np.array(
            [position[eid] for eid in groups.column("event_id").to_pylist()], dtype=np.int64
        ),
        group_lang=tuple(groups.column("lang").to_pylist()),
        group_ordinal=_numbers(groups.column("ordinal")).astype(np.int64),
        group_count=counts,
        group_sums=group_sums,
        df_indices=np.frombuffer(df_indices, dtype=np.int32).copy(),
        df_values=np.frombuffer(df_values, dtype=np.float64).copy(),
        n_docs=int(n_docs),
        clock_h=math.nan if clock_h is None else float(clock_h),
    )


def _numbers(column: object) -> np.ndarray:
    """A numeric Arrow column as a numpy array (nulls as nan)."""
    import pyarrow as pa

    assert isinstance(column, pa.ChunkedArray)
    return column.to_numpy().astype(np.float64, copy=False)


def _flat_blobs(column: object, dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A column of packed arrays (raw little-endian bytes of `dtype`) as their values run
    together, which rows are not null, and the offsets of each row in those values (a null row
    is empty): read from the column's buffers, not as thousands of Python byte strings, for a
    window of thousands of 384-float sums."""
    import pyarrow as pa

    assert isinstance(column, pa.ChunkedArray)
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if array.type not in (pa.binary(), pa.large_binary()):
        array = array.cast(pa.large_binary())
    width = np.int64 if array.type == pa.large_binary() else np.int32
    item = np.dtype(dtype).newbyteorder("<")
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    _, offsets_buffer, data_buffer = array.buffers()
    raw = np.frombuffer(offsets_buffer, dtype=width)[array.offset : array.offset + len(array) + 1]
    raw = raw.astype(np.int64)
    lengths = np.where(valid, np.diff(raw), 0) // item.itemsize
    offsets = np.zeros(len(array) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0)
    starts, ends = raw[:-1][valid], raw[1:][valid]
    if np.array_equal(starts[1:], ends[:-1]):  # valid rows back to back (the usual): one slice
        chunk = data[int(starts[0]) : int(ends[-1])] if len(starts) else data[:0]
    else:
        chunk = np.concatenate([data[int(a) : int(b)] for a, b in zip(starts, ends, strict=True)])
    values = chunk.view(item).astype(np.dtype(dtype))  # a copy: the Arrow buffer goes away
    return values, valid, offsets


def _blob_array(
    values: np.ndarray, offsets: np.ndarray, rows: np.ndarray, valid: np.ndarray
) -> object:
    """Rows `rows` of packed arrays (values, offsets) as an Arrow binary column, nulls where
    not `valid` (the inverse of `_flat_blobs`)."""
    import pyarrow as pa

    return pa.array(
        [
            values[offsets[r] : offsets[r + 1]].tobytes() if valid[r] else None
            for r in rows.tolist()
        ],
        type=pa.binary(),
    )


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def save_state(
    con: duckdb.DuckDBPyConnection,
    state: StreamState,
    fp: str,
    *,
    full: bool,
    seen_through: datetime | None = None,
) -> None:
    """Write the state: all of it (`full`), or only events that changed and the removal of
    those that left the window. `placed` is read inside the same transaction."""
    import pyarrow as pa

    # Events are restored in this order (it decides nothing: ties go by group ordinal).
    write = np.array([full or eid in state.changed for eid in state.event_ids], dtype=bool)
    rows = np.flatnonzero(write)
    events = pa.table(
        {
            "event_id": [state.event_ids[i] for i in rows],
            "ordinal": pa.array(rows, type=pa.int32()),
            "first_h": pa.array(state.first_h[rows], from_pandas=True),
            "last_h": pa.array(state.last_h[rows], from_pandas=True),
            "size": pa.array(state.size[rows], type=pa.int32()),
            "lex_indices": _blob_array(
                state.lex_indices.astype("<i4"), state.lex_offsets, rows, state.has_lex
            ),
            "lex_values": _blob_array(
                state.lex_values.astype("<f8"), state.lex_offsets, rows, state.has_lex
            ),
        }
    )
    g_rows = np.flatnonzero(write[state.group_event]) if len(state.group_event) else rows[:0]
    dim = state.group_sums.shape[1] if state.group_sums.ndim == 2 else 0
    g_offsets = np.arange(len(state.group_event) + 1, dtype=np.int64) * dim
    groups = pa.table(
        {
            "event_id": [state.event_ids[state.group_event[g]] for g in g_rows],
            "lang": [state.group_lang[g] for g in g_rows],
            "ordinal": pa.array(state.group_ordinal[g_rows], type=pa.int64()),
            "n": pa.array(state.group_count[g_rows], type=pa.int32()),
            "vec_sum": _blob_array(
                state.group_sums.astype("<f8").reshape(-1), g_offsets, g_rows, state.group_count > 0
            ),
        }
    )
    keep = list(state.event_ids)
    con.register(_EVENTS_IN, events)
    con.register(_GROUPS_IN, groups)
    try:
        with warehouse.id_table(con, keep) as kept, warehouse.transaction(con):
            if full:
                con.execute("DELETE FROM align_state_groups")
                con.execute("DELETE FROM align_state_events")
            else:
                gone = (
                    f"event_id NOT IN (SELECT id FROM {kept}) "
                    f"OR event_id IN (SELECT event_id FROM {_EVENTS_IN})"
                )
                con.execute(f"DELETE FROM align_state_groups WHERE {gone}")
                con.execute(f"DELETE FROM align_state_events WHERE {gone}")
            con.execute(f"INSERT INTO align_state_events SELECT * FROM {_EVENTS_IN}")
            con.execute(
                "INSERT INTO align_state_groups (event_id, lang, ordinal, n, vec_sum) "
                f"SELECT event_id, lang, ordinal, n, vec_sum FROM {_GROUPS_IN}"
            )
            con.execute("DELETE FROM align_state")  # one row; no INSERT OR REPLACE on a DuckLake
            con.execute(
                "INSERT INTO align_state (id, fingerprint, placed, clock_h, n_docs, df_indices, "
                "df_values, saved_at, seen_through) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    fp,
                    _placed_count(con),
                    _nan_to_none(state.clock_h),
                    state.n_docs,
                    state.df_indices.astype(np.int32).tobytes(),
                    state.df_values.astype(np.float64).tobytes(),
                    datetime.now(UTC),
                    seen_through,
                ],
            )
    finally:
        con.unregister(_EVENTS_IN)
        con.unregister(_GROUPS_IN)


def unplaced_articles(
    con: duckdb.DuckDBPyConnection, since: datetime | None = None
) -> list[Article]:
    """Articles with no event yet, in publication order.

    With `since` (the latest first_seen_at the saved state has placed), only articles first
    seen from then on are looked up, by id; that is all of them when their number is that of
    articles minus assignments (two counts DuckDB keeps). Otherwise (a loader that committed
    late, articles placed by something else) all ids are compared, as without `since`. The
    anti-join reads ids only; whole rows are read for the few that are new."""
    if since is not None:
        counts = con.execute(
            "SELECT (SELECT count(*) FROM articles) - (SELECT count(*) FROM event_articles)"
        ).fetchall()
        recent = [
            r[0]
            for r in con.execute(
                "SELECT article_id FROM articles WHERE first_seen_at >= ?", [since]
            ).fetchall()
        ]
        if 0 < len(recent) <= warehouse.INDEX_LOOKUP_MAX:
            with warehouse.ids_in(con, "article_id", recent) as among:
                placed = {
                    r[0]
                    for r in con.execute(
                        f"SELECT article_id FROM event_articles WHERE {among}"
                    ).fetchall()
                }
            new = [i for i in recent if i not in placed]
            if len(new) == int(counts[0][0]):
                return warehouse.fetch_articles(con, new)
    ids = [
        r[0]
        for r in con.execute(
            "SELECT article_id FROM articles ANTI JOIN event_articles USING (article_id)"
        ).fetchall()
    ]
    return warehouse.fetch_articles(con, ids)


def seen_through(con: duckdb.DuckDBPyConnection, article_ids: list[str]) -> datetime | None:
    """The latest first_seen_at among the given articles (None: none known)."""
    if not article_ids:
        return None
    with warehouse.ids_in(con, "article_id", article_ids) as these:
        row = con.execute(f"SELECT max(first_seen_at) FROM articles WHERE {these}").fetchall()
    return row[0][0] if row else None


def _saved_seen_through(con: duckdb.DuckDBPyConnection) -> datetime | None:
    row = con.execute("SELECT seen_through FROM align_state").fetchall()
    return row[0][0] if row else None


def english_for(con: duckdb.DuckDBPyConnection, article_ids: list[str]) -> dict[str, str]:
    """`warehouse.english_text` for the given articles only."""
    if not article_ids:
        return {}
    # Each table read by its own id predicate alone, so that DuckDB serves it from the
    # article_id index (migration 019) instead of scanning every stored segment.
    with (
        warehouse.ids_in(con, "article_id", article_ids) as in_translations,
        warehouse.ids_in(con, "article_id", article_ids) as in_segments,
    ):
        rows = con.execute(
            f"""
            WITH en AS (
                SELECT article_id, seg_no, arg_max(text_en, created_at) AS text_en
                FROM translations WHERE {in_translations}
                GROUP BY article_id, seg_no
            ), seg AS (
                SELECT article_id, seg_no FROM segments WHERE {in_segments}
            )
            SELECT s.article_id, string_agg(en.text_en, ' ' ORDER BY s.seg_no)
            FROM seg s LEFT JOIN en USING (article_id, seg_no)
            GROUP BY s.article_id
            HAVING count(en.text_en) = count(*)
            """
        ).fetchall()
    return {r[0]: r[1] for r in rows}


def _vectors(
    con: duckdb.DuckDBPyConnection, articles: list[Article], embedder: Embedder | None
) -> dict[str, np.ndarray]:
    from pipeline.align.vector_cache import embed_articles

    return embed_articles(articles, embedder, con) if embedder is not None else {}


def replay(
    con: duckdb.DuckDBPyConnection, settings: AlignSettings, embedder: Embedder | None
) -> StageResult:
    """Replay every stored article (placed ones keep their event), place the rest, save state."""
    articles = warehouse.fetch_articles(con)
    english = warehouse.english_text(con)
    vectors = _vectors(con, articles, embedder)
    existing = warehouse.fetch_event_articles(con)
    events, assignments, result, state = align_events_with_state(
        articles, english, vectors, settings, existing=existing
    )
    warehouse.load_events(con, events, assignments, state.merged)
    last_seen = con.execute("SELECT max(first_seen_at) FROM articles").fetchall()[0][0]
    save_state(
        con, state, fingerprint(settings, _name(embedder)), full=True, seen_through=last_seen
    )
    result.add("replayed", len(existing))
    return result


def _name(embedder: Embedder | None) -> str:
    return embedder.name if embedder is not None else "none"


def align_new(
    con: duckdb.DuckDBPyConnection, settings: AlignSettings, embedder: Embedder | None
) -> StageResult:
    """Place the articles that have no event yet, from the saved state (else by a replay)."""
    with collector_paused():
        return _align_new(con, settings, embedder)


def _align_new(
    con: duckdb.DuckDBPyConnection, settings: AlignSettings, embedder: Embedder | None
) -> StageResult:
    t0 = time.perf_counter()
    fp = fingerprint(settings, _name(embedder))
    state = load_state(con, fp)
    if state is None:
        result = replay(con, settings, embedder)
        result.seconds = time.perf_counter() - t0
        return result
    since = _saved_seen_through(con)
    new = unplaced_articles(con, since)
    if not new:
        result = StageResult("align")
        result.seconds = time.perf_counter() - t0
        return result
    english = english_for(con, [a.article_id for a in new])
    vectors = _vectors(con, new, embedder)
    assignments, new_state, result = align_batch(state, new, english, vectors, settings)
    events = touched_events(con, assignments, new, vectors, embedder, new_state.merged)
    warehouse.load_events(con, events, assignments, new_state.merged, only_folded=True)
    batch_seen = seen_through(con, [a.article_id for a in new])
    latest = max((d for d in (since, batch_seen) if d is not None), default=None)
    save_state(con, new_state, fp, full=False, seen_through=latest)
    result.counts["events"] = len(events)
    result.seconds = time.perf_counter() - t0
    log.info("align: %s in %.2fs (from saved state)", result.counts, result.seconds)
    return result


def touched_events(
    con: duckdb.DuckDBPyConnection,
    assignments: list[EventArticle],
    new: list[Article],
    vectors: dict[str, np.ndarray],
    embedder: Embedder | None,
    merged: Mapping[str, str] | None = None,
) -> list[Event]:
    """Event records (label, span, outlets, size) of the events that gained members, from all
    their members: earlier ones read back from the warehouse, those of events folded into them
    (`merged`: folded id -> surviving id) included."""
    from pipeline.align.events import _order_key

    by_event: dict[str, list[Article]] = {}
    new_by_id = {a.article_id: a for a in new}
    for ea in assignments:
        by_event.setdefault(ea.event_id, []).append(new_by_id[ea.article_id])
    merged = merged or {}
    with warehouse.ids_in(con, "event_id", sorted({*by_event, *merged})) as touched:
        rows = con.execute(
            f"SELECT article_id, event_id FROM event_articles WHERE {touched}"
        ).fetchall()
    event_of = {aid: merged.get(eid, eid) for aid, eid in rows if aid not in new_by_id}
    earlier = warehouse.fetch_articles(con, list(event_of))
    for a in earlier:
        by_event[event_of[a.article_id]].append(a)
    all_vectors = {**_vectors(con, earlier, embedder), **vectors}
    return [
        build_event(eid, sorted(members, key=_order_key), all_vectors)
        for eid, members in by_event.items()
    ]
