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
    EventState,
    GroupState,
    StreamState,
    align_batch,
    align_events_with_state,
    build_event,
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
    groups: dict[str, list[GroupState]] = {}
    table = con.execute(
        "SELECT event_id, lang, ordinal, n, vec_sum FROM align_state_groups ORDER BY ordinal"
    ).to_arrow_table()
    sums = _rows_of(table.column("vec_sum"))
    for i, (eid, lang, ordinal, n) in enumerate(
        zip(
            table.column("event_id").to_pylist(),
            table.column("lang").to_pylist(),
            table.column("ordinal").to_pylist(),
            table.column("n").to_pylist(),
            strict=True,
        )
    ):
        groups.setdefault(eid, []).append(GroupState(lang, int(ordinal), int(n), sums[i]))
    table = con.execute(
        "SELECT event_id, first_h, last_h, size, lex_indices, lex_values "
        "FROM align_state_events ORDER BY ordinal, event_id"
    ).to_arrow_table()
    lex_i, lex_v = _rows_of(table.column("lex_indices")), _rows_of(table.column("lex_values"))
    events: list[EventState] = []
    for i, (eid, first_h, last_h, size) in enumerate(
        zip(
            table.column("event_id").to_pylist(),
            table.column("first_h").to_pylist(),
            table.column("last_h").to_pylist(),
            table.column("size").to_pylist(),
            strict=True,
        )
    ):
        indices, values = lex_i[i], lex_v[i]
        events.append(
            EventState(
                event_id=eid,
                first_h=math.nan if first_h is None else float(first_h),
                last_h=math.nan if last_h is None else float(last_h),
                size=int(size),
                lex_indices=None if indices is None else indices.astype(np.int32),
                lex_values=values,
                groups=tuple(groups.get(eid, ())),
            )
        )
    return StreamState(
        events=tuple(events),
        df_indices=np.frombuffer(df_indices, dtype=np.int32).copy(),
        df_values=np.frombuffer(df_values, dtype=np.float64).copy(),
        n_docs=int(n_docs),
        clock_h=math.nan if clock_h is None else float(clock_h),
    )


def _rows_of(column: object) -> list[np.ndarray | None]:
    """A list<double> Arrow column as float64 arrays (None for nulls), without Python floats:
    a window of a few thousand 384-float sums would otherwise cost a second to convert."""
    import pyarrow as pa

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    assert isinstance(array, pa.ListArray)
    values = array.values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    offsets = array.offsets.to_numpy()
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    return [
        values[offsets[i] : offsets[i + 1]].copy() if valid[i] else None for i in range(len(array))
    ]


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def save_state(con: duckdb.DuckDBPyConnection, state: StreamState, fp: str, *, full: bool) -> None:
    """Write the state: all of it (`full`), or only events that changed and the removal of
    those that left the window. `placed` is read inside the same transaction."""
    import pyarrow as pa

    # Events are restored in this order (it decides nothing: ties go by group ordinal).
    ordinal = {es.event_id: i for i, es in enumerate(state.events)}
    write = [es for es in state.events if full or es.event_id in state.changed]
    events = pa.table(
        {
            "event_id": [es.event_id for es in write],
            "ordinal": pa.array([ordinal[es.event_id] for es in write], type=pa.int32()),
            "first_h": [_nan_to_none(es.first_h) for es in write],
            "last_h": [_nan_to_none(es.last_h) for es in write],
            "size": pa.array([es.size for es in write], type=pa.int32()),
            "lex_indices": pa.array(
                [None if es.lex_indices is None else es.lex_indices for es in write],
                type=pa.list_(pa.int32()),
            ),
            "lex_values": pa.array(
                [None if es.lex_values is None else es.lex_values for es in write],
                type=pa.list_(pa.float64()),
            ),
        }
    )
    group_rows = [(es.event_id, gs) for es in write for gs in es.groups]
    groups = pa.table(
        {
            "event_id": [eid for eid, _ in group_rows],
            "lang": [gs.lang for _, gs in group_rows],
            "ordinal": pa.array([gs.ordinal for _, gs in group_rows], type=pa.int64()),
            "n": pa.array([gs.count for _, gs in group_rows], type=pa.int32()),
            "vec_sum": pa.array([gs.total for _, gs in group_rows], type=pa.list_(pa.float64())),
        }
    )
    keep = [es.event_id for es in state.events]
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
                "INSERT INTO align_state VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
                [
                    fp,
                    _placed_count(con),
                    _nan_to_none(state.clock_h),
                    state.n_docs,
                    state.df_indices.astype(np.int32).tobytes(),
                    state.df_values.astype(np.float64).tobytes(),
                    datetime.now(UTC),
                ],
            )
    finally:
        con.unregister(_EVENTS_IN)
        con.unregister(_GROUPS_IN)


def unplaced_articles(con: duckdb.DuckDBPyConnection) -> list[Article]:
    """Articles with no event yet, in publication order. The anti-join reads ids only; whole
    rows are read for the few that are new (a join over all columns reads all of history)."""
    ids = [
        r[0]
        for r in con.execute(
            "SELECT article_id FROM articles ANTI JOIN event_articles USING (article_id)"
        ).fetchall()
    ]
    return warehouse.fetch_articles(con, ids)


def english_for(con: duckdb.DuckDBPyConnection, article_ids: list[str]) -> dict[str, str]:
    """`warehouse.english_text` for the given articles only."""
    if not article_ids:
        return {}
    with warehouse.id_table(con, article_ids) as ids:
        rows = con.execute(
            f"""
            WITH en AS (
                SELECT article_id, seg_no, arg_max(text_en, created_at) AS text_en
                FROM translations WHERE article_id IN (SELECT id FROM {ids})
                GROUP BY article_id, seg_no
            )
            SELECT s.article_id, string_agg(en.text_en, ' ' ORDER BY s.seg_no)
            FROM segments s LEFT JOIN en USING (article_id, seg_no)
            WHERE s.article_id IN (SELECT id FROM {ids})
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
    save_state(con, state, fingerprint(settings, _name(embedder)), full=True)
    result.add("replayed", len(existing))
    return result


def _name(embedder: Embedder | None) -> str:
    return embedder.name if embedder is not None else "none"


def align_new(
    con: duckdb.DuckDBPyConnection, settings: AlignSettings, embedder: Embedder | None
) -> StageResult:
    """Place the articles that have no event yet, from the saved state (else by a replay)."""
    t0 = time.perf_counter()
    fp = fingerprint(settings, _name(embedder))
    state = load_state(con, fp)
    if state is None:
        result = replay(con, settings, embedder)
        result.seconds = time.perf_counter() - t0
        return result
    new = unplaced_articles(con)
    if not new:
        result = StageResult("align")
        result.seconds = time.perf_counter() - t0
        return result
    english = english_for(con, [a.article_id for a in new])
    vectors = _vectors(con, new, embedder)
    assignments, new_state, result = align_batch(state, new, english, vectors, settings)
    events = touched_events(con, assignments, new, vectors, embedder, new_state.merged)
    warehouse.load_events(con, events, assignments, new_state.merged, only_folded=True)
    save_state(con, new_state, fp, full=False)
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
    with warehouse.id_table(con, [*by_event, *merged]) as touched:
        rows = con.execute(
            f"SELECT article_id, event_id FROM event_articles "
            f"WHERE event_id IN (SELECT id FROM {touched})"
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
