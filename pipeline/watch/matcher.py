"""Decide which new coverage matches each watch and write the alert ledger, exactly once.

Exactly one alert per (watch, article), ever: for each watch, reading the candidates,
checking them against the ledger and inserting the new alerts with their pending deliveries is
ONE transaction, and `alerts` has (watch, article_id) as its primary key. A re-run, a retried
Airflow task or a backfill sees the rows already there and inserts nothing; a crash before
COMMIT leaves nothing, so the next run decides again (nothing is lost). Delivery is separate
(see notifiers.deliver_pending): a delivery row stays 'pending' until a send succeeds.

What matches:
- lexical: an article with a sentence holding every word of the query, in the original (any
  prefixed form) or in its English;
- semantic: an article whose e5 vector has cosine >= the watch's floor with the query;
- hybrid (default): the lexical matches, plus every article of an event that a lexical match
  belongs to (so an English watch hears of the Hebrew and Arabic coverage of the same event
  while its translation is pending), plus semantic matches above the floor.
`min_outlets` holds an alert back until the matching coverage of its event spans that many
outlets; held-back articles are not in the ledger and alert once the event grows.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipeline.search.filters import SearchFilters
from pipeline.search.lexical import match_all_words
from pipeline.search.semantic import embed_query, search_semantic
from pipeline.watch.store import Watch, list_watches

if TYPE_CHECKING:
    import duckdb

    from pipeline.align.vectors import Embedder

log = logging.getLogger(__name__)

SEMANTIC_CANDIDATES = 500


@dataclass(frozen=True)
class Match:
    article_id: str
    seg_no: int | None
    score: float
    how: str  # 'lexical', 'event' or 'semantic'


@dataclass
class MatchResult:
    watch: str
    matched: int = 0  # articles matching now (new or not)
    new_alerts: list[str] = field(default_factory=list)  # article ids alerted this run
    held_back: int = 0  # matching, new, but the event has fewer than min_outlets outlets


def find_matches(
    con: duckdb.DuckDBPyConnection,
    watch: Watch,
    embedder: Embedder | None,
    *,
    semantic_floor: float,
) -> dict[str, Match]:
    """Every article matching the watch now, regardless of the ledger (`watch test` shows it)."""
    filters = SearchFilters(langs=watch.langs)
    found: dict[str, Match] = {}
    if watch.mode in ("lexical", "hybrid"):
        for aid, (seg, score) in match_all_words(con, watch.query, filters).items():
            found[aid] = Match(aid, seg, score, "lexical")
    if watch.mode == "hybrid" and found:
        where, params = filters.sql("a")
        mates = con.execute(
            f"""
            SELECT ea.article_id FROM event_articles ea JOIN articles a USING (article_id)
            WHERE ea.event_id IN (
                SELECT event_id FROM event_articles WHERE article_id IN (SELECT unnest(?))
            ) {where}
            """,
            [list(found), *params],
        ).fetchall()
        for (aid,) in mates:
            found.setdefault(aid, Match(aid, None, 0.0, "event"))
    if watch.mode in ("semantic", "hybrid") and embedder is not None:
        floor = watch.min_score if watch.min_score is not None else semantic_floor
        qv = embed_query(embedder, watch.query)
        for hit in search_semantic(
            con, qv, embedder.name, filters, limit=SEMANTIC_CANDIDATES, min_score=floor
        ):
            found.setdefault(
                hit.article_id, Match(hit.article_id, hit.seg_no, hit.score, "semantic")
            )
    elif watch.mode == "semantic":
        log.warning("watch %s: semantic mode but no embedder here; nothing matches", watch.name)
    return found


def _payloads(
    con: duckdb.DuckDBPyConnection, watch: Watch, matches: list[Match]
) -> dict[str, dict[str, Any]]:
    """What the alert says: the event, its outlets and languages, the matching sentence and
    its English (None while pending)."""
    rows = con.execute(
        """
        WITH k AS (SELECT unnest(?) AS article_id, unnest(?) AS seg_no),
        en AS (
            SELECT article_id, seg_no, arg_max(text_en, created_at) AS english
            FROM translations WHERE model_id <> 'identity' GROUP BY article_id, seg_no
        ),
        first_seg AS (SELECT article_id, min(seg_no) AS seg_no FROM segments GROUP BY 1)
        SELECT k.article_id, coalesce(k.seg_no, f.seg_no), a.outlet_id, coalesce(o.name, a.outlet_id),
               a.lang, a.title, a.url, a.published_at, ea.event_id, e.label, e.outlets, e.langs,
               s.text, CASE WHEN s.lang = 'en' THEN s.text ELSE en.english END
        FROM k JOIN articles a USING (article_id)
        LEFT JOIN first_seg f ON f.article_id = k.article_id
        LEFT JOIN outlets o ON o.outlet_id = a.outlet_id
        LEFT JOIN event_articles ea ON ea.article_id = k.article_id
        LEFT JOIN events e ON e.event_id = ea.event_id
        LEFT JOIN segments s ON s.article_id = k.article_id
             AND s.seg_no = coalesce(k.seg_no, f.seg_no)
        LEFT JOIN en ON en.article_id = s.article_id AND en.seg_no = s.seg_no
        """,
        [[m.article_id for m in matches], [m.seg_no for m in matches]],
    ).fetchall()
    how = {m.article_id: m for m in matches}
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out[r[0]] = {
            "watch": watch.name,
            "query": watch.query,
            "article_id": r[0],
            "seg_no": r[1],
            "outlet_id": r[2],
            "outlet": r[3],
            "lang": r[4],
            "title": r[5],
            "url": r[6],
            "published_at": r[7].isoformat() if r[7] else None,
            "event_id": r[8],
            "event_label": r[9],
            "event_outlets": list(r[10] or []),
            "event_langs": list(r[11] or []),
            "original": r[12],
            "english": r[13],
            "matched_by": how[r[0]].how,
            "score": how[r[0]].score,
        }
    return out


def match_watch(
    con: duckdb.DuckDBPyConnection,
    watch: Watch,
    embedder: Embedder | None,
    *,
    semantic_floor: float,
    at: datetime | None = None,
) -> MatchResult:
    """Insert the alerts (and their pending deliveries) this watch owes; one transaction.

    On a DuckLake (no keys) the transaction runs under the advisory locks of `alerts` and
    `alert_deliveries` (`warehouse_backends.writes`), so two workers matching at once take
    turns: the second reads the first one's committed rows and inserts nothing twice; a lost
    commit is retried whole. The inserts are MERGEs on the ledger's natural key, which keep an
    existing row, on both backends."""
    from pipeline.warehouse_backends import writes

    return writes("alerts", "alert_deliveries")(_match_watch)(
        con, watch, embedder, semantic_floor=semantic_floor, at=at
    )


def _match_watch(
    con: duckdb.DuckDBPyConnection,
    watch: Watch,
    embedder: Embedder | None,
    *,
    semantic_floor: float,
    at: datetime | None,
) -> MatchResult:
    import pyarrow as pa

    from pipeline.warehouse import merge_from, transaction

    at = at or datetime.now(UTC)
    result = MatchResult(watch.name)
    with transaction(con):
        matches = find_matches(con, watch, embedder, semantic_floor=semantic_floor)
        result.matched = len(matches)
        if not matches:
            return result
        info = con.execute(
            """
            WITH k AS (SELECT unnest(?) AS article_id)
            SELECT k.article_id, a.outlet_id, ea.event_id,
                   a.first_seen_at >= ? AS is_new,
                   EXISTS (SELECT 1 FROM alerts x
                           WHERE x.watch = ? AND x.article_id = k.article_id) AS alerted
            FROM k JOIN articles a USING (article_id)
            LEFT JOIN event_articles ea USING (article_id)
            """,
            [list(matches), watch.created_at, watch.name],
        ).fetchall()
        outlets_per_event: dict[str, set[str]] = {}
        for aid, outlet, event, _, _ in info:
            outlets_per_event.setdefault(event or aid, set()).add(outlet)
        todo: list[Match] = []
        for aid, _, event, is_new, alerted in info:
            if alerted or not is_new:
                continue
            if len(outlets_per_event[event or aid]) < watch.min_outlets:
                result.held_back += 1
                continue
            todo.append(matches[aid])
        if not todo:
            return result
        payloads = _payloads(con, watch, todo)
        todo.sort(key=lambda m: m.article_id)
        alerts = pa.table(
            {
                "watch": [watch.name] * len(todo),
                "article_id": [m.article_id for m in todo],
                "event_id": pa.array(
                    [payloads[m.article_id]["event_id"] for m in todo], pa.string()
                ),
                "seg_no": pa.array([payloads[m.article_id]["seg_no"] for m in todo], pa.int32()),
                "score": pa.array([m.score for m in todo], pa.float64()),
                "payload": [json.dumps(payloads[m.article_id], ensure_ascii=False) for m in todo],
                "created_at": pa.array([at] * len(todo), pa.timestamp("us", tz="UTC")),
            }
        )
        deliveries = pa.table(
            {
                "watch": [watch.name] * (len(todo) * len(watch.notify)),
                "article_id": [m.article_id for m in todo for _ in watch.notify],
                "target": [t for _ in todo for t in watch.notify],
                "status": ["pending"] * (len(todo) * len(watch.notify)),
                "attempts": pa.array([0] * (len(todo) * len(watch.notify)), pa.int32()),
            }
        )
        for name, table in (("alerts", alerts), ("alert_deliveries", deliveries)):
            if not table.num_rows:
                continue
            temp = f"_parallax_{name}_in"
            con.register(temp, table)
            try:
                cols = table.column_names
                merge_from(con, name, cols, f"SELECT * FROM {temp}", update=False)
            finally:
                con.unregister(temp)
        result.new_alerts = [m.article_id for m in todo]
    return result


def match_all(
    con: duckdb.DuckDBPyConnection,
    embedder: Embedder | None,
    *,
    semantic_floor: float,
) -> list[MatchResult]:
    return [match_watch(con, w, embedder, semantic_floor=semantic_floor) for w in list_watches(con)]
