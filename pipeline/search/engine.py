"""One front door for search: lexical, semantic or both fused, hits grouped by event.

Each hit carries its outlet, language, time, the matching original sentence, its English
(None while the translation is pending) and the aligned sentences of the other outlets of the
same event (from `segment_links`), so a reader sees at once how others told it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipeline.search.filters import SearchFilters
from pipeline.search.fuse import ranked, rrf
from pipeline.search.lexical import search_lexical
from pipeline.search.semantic import (
    SemanticUnavailable,
    best_sentences,
    embed_query,
    search_semantic,
)

if TYPE_CHECKING:
    import duckdb

    from pipeline.align.vectors import Embedder

log = logging.getLogger(__name__)

MODES = ("hybrid", "lexical", "semantic")
CANDIDATES = 100  # per mode, before fusion
ALIGNED_PER_HIT = 6


@dataclass(frozen=True)
class AlignedSentence:
    outlet: str
    outlet_id: str
    lang: str
    article_id: str
    seg_no: int
    original: str
    english: str | None
    score: float


@dataclass(frozen=True)
class SearchHit:
    event_id: str | None
    event_label: str | None
    article_id: str
    outlet: str
    outlet_id: str
    lang: str
    published_at: datetime | None
    title: str
    url: str
    seg_no: int
    original: str
    english: str | None
    score: float  # fused (RRF) score in hybrid mode, BM25 or cosine otherwise
    lexical_rank: int | None
    semantic_rank: int | None
    aligned: list[AlignedSentence] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["published_at"] = self.published_at.isoformat() if self.published_at else None
        return out


@dataclass
class SearchResult:
    query: str
    mode: str  # the mode actually used (hybrid falls back to lexical without an embedder)
    hits: list[SearchHit]
    notes: list[str] = field(default_factory=list)

    def by_event(self) -> list[tuple[str | None, list[SearchHit]]]:
        """Hits grouped by event, groups in the order of their best hit."""
        groups: dict[str, list[SearchHit]] = {}
        for hit in self.hits:
            groups.setdefault(hit.event_id or f"article:{hit.article_id}", []).append(hit)
        return [(hits[0].event_id, hits) for hits in groups.values()]


def search(
    con: duckdb.DuckDBPyConnection,
    query: str,
    *,
    mode: str = "hybrid",
    filters: SearchFilters | None = None,
    limit: int = 20,
    embedder: Embedder | None = None,
    candidates: int = CANDIDATES,
    with_aligned: bool = True,
    scan: bool = False,
) -> SearchResult:
    """Ranked hits for `query`. `embedder` is needed for semantic and hybrid modes; hybrid
    without one degrades to lexical (noted in the result), semantic without one raises.
    `scan=True` runs the semantic half as a SQL scan instead of the in-memory matrix (the
    reference the bench and tests compare with; same hits)."""
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")
    filters = filters or SearchFilters()
    notes: list[str] = []
    lex_ids: list[str] = []
    sem_ids: list[str] = []
    seg: dict[str, int] = {}
    raw: dict[str, float] = {}
    used = mode
    qv = None
    if mode in ("semantic", "hybrid"):
        if embedder is None:
            if mode == "semantic":
                raise SemanticUnavailable(
                    "semantic search needs the embedder (align.embedder); none can run here"
                )
            notes.append("no embedder here: lexical results only")
            used = "lexical"
        else:
            qv = embed_query(embedder, query)
            # the closest sentence is looked up below, for the hits shown only
            sem = search_semantic(
                con, qv, embedder.name, filters, limit=candidates, sentences=False, scan=scan
            )
            sem_ids = [h.article_id for h in sem]
            for sh in sem:
                raw[sh.article_id] = sh.score
            if not sem:
                notes.append(f"no article vectors of {embedder.name} match the filters")
    if used in ("lexical", "hybrid"):
        lex = search_lexical(con, query, filters, limit=candidates)
        lex_ids = [h.article_id for h in lex]
        for h in lex:
            seg[h.article_id] = h.seg_no  # the sentence with the query's words wins
            if used == "lexical":
                raw[h.article_id] = h.score
    if used == "hybrid":
        fused = rrf([lex_ids, sem_ids])
        order = ranked(fused)
        scores = fused
    else:
        order = lex_ids if used == "lexical" else sem_ids
        scores = raw
    order = order[:limit]
    if qv is not None and embedder is not None:
        lacking = [a for a in order if a not in seg]
        seg.update(best_sentences(con, qv, embedder.name, lacking))
    lex_rank = {a: i for i, a in enumerate(lex_ids, start=1)}
    sem_rank = {a: i for i, a in enumerate(sem_ids, start=1)}
    hits = _hydrate(con, order, seg, scores, lex_rank, sem_rank, with_aligned=with_aligned)
    # grouped by event: an event's hits follow its best hit
    first: dict[str, int] = {}
    for i, hit in enumerate(hits):
        first.setdefault(hit.event_id or hit.article_id, i)
    hits.sort(key=lambda h: (first[h.event_id or h.article_id], -h.score, h.article_id))
    return SearchResult(query, used, hits, notes)


def _english(keys: str) -> str:
    """The latest English of the sentences in the CTE `keys` (article_id, seg_no) only: a
    translations table of millions of rows is read for the hits' keys, not aggregated whole."""
    return f"""
        SELECT t.article_id, t.seg_no, arg_max(t.text_en, t.created_at) AS english
        FROM translations t SEMI JOIN {keys} kk
          ON kk.article_id = t.article_id AND kk.seg_no = t.seg_no
        WHERE t.model_id <> 'identity' GROUP BY t.article_id, t.seg_no
    """


def _hydrate(
    con: duckdb.DuckDBPyConnection,
    order: list[str],
    seg: dict[str, int],
    scores: dict[str, float],
    lex_rank: dict[str, int],
    sem_rank: dict[str, int],
    *,
    with_aligned: bool,
) -> list[SearchHit]:
    if not order:
        return []
    keys = [(a, seg.get(a, 0)) for a in order]
    rows = con.execute(
        f"""
        WITH k AS (SELECT unnest(?) AS article_id, unnest(?) AS seg_no),
        en AS ({_english("k")})
        SELECT k.article_id, ea.event_id, e.label, coalesce(o.name, a.outlet_id), a.outlet_id,
               a.lang, a.published_at, a.title, a.url, k.seg_no,
               coalesce(s.text, a.title),
               CASE WHEN s.lang = 'en' THEN s.text ELSE en.english END
        FROM k JOIN articles a USING (article_id)
        LEFT JOIN event_articles ea USING (article_id)
        LEFT JOIN events e USING (event_id)
        LEFT JOIN outlets o ON o.outlet_id = a.outlet_id
        LEFT JOIN segments s ON s.article_id = k.article_id AND s.seg_no = k.seg_no
        LEFT JOIN en ON en.article_id = k.article_id AND en.seg_no = k.seg_no
        """,
        [[k[0] for k in keys], [k[1] for k in keys]],
    ).fetchall()
    aligned = _aligned(con, keys) if with_aligned else {}
    by_id = {r[0]: r for r in rows}
    hits: list[SearchHit] = []
    for aid in order:
        r = by_id.get(aid)
        if r is None:
            continue
        hits.append(
            SearchHit(
                event_id=r[1],
                event_label=r[2],
                article_id=aid,
                outlet=r[3],
                outlet_id=r[4],
                lang=r[5] or "",
                published_at=r[6],
                title=r[7] or "",
                url=r[8],
                seg_no=int(r[9]),
                original=r[10] or "",
                english=r[11],
                score=float(scores.get(aid, 0.0)),
                lexical_rank=lex_rank.get(aid),
                semantic_rank=sem_rank.get(aid),
                aligned=aligned.get((aid, int(r[9])), []),
            )
        )
    return hits


def _aligned(
    con: duckdb.DuckDBPyConnection, keys: list[tuple[str, int]]
) -> dict[tuple[str, int], list[AlignedSentence]]:
    """Sentences of other outlets linked to each (article, sentence), best link first."""
    rows = con.execute(
        f"""
        WITH k AS (SELECT unnest(?) AS article_id, unnest(?) AS seg_no),
        pairs AS (
            SELECT l.article_a AS aid, l.seg_a AS sno, l.article_b AS oid, l.seg_b AS oseg,
                   l.score
            FROM segment_links l JOIN k ON k.article_id = l.article_a AND k.seg_no = l.seg_a
            UNION ALL
            SELECT l.article_b, l.seg_b, l.article_a, l.seg_a, l.score
            FROM segment_links l JOIN k ON k.article_id = l.article_b AND k.seg_no = l.seg_b
        ),
        other AS (SELECT DISTINCT oid AS article_id, oseg AS seg_no FROM pairs),
        en AS ({_english("other")})
        SELECT p.aid, p.sno, coalesce(o.name, a.outlet_id), a.outlet_id, s.lang, p.oid, p.oseg,
               s.text, CASE WHEN s.lang = 'en' THEN s.text ELSE en.english END, p.score
        FROM pairs p
        JOIN articles a ON a.article_id = p.oid
        LEFT JOIN outlets o ON o.outlet_id = a.outlet_id
        JOIN segments s ON s.article_id = p.oid AND s.seg_no = p.oseg
        LEFT JOIN en ON en.article_id = p.oid AND en.seg_no = p.oseg
        ORDER BY p.aid, p.sno, p.score DESC, a.outlet_id
        """,
        [[k[0] for k in keys], [k[1] for k in keys]],
    ).fetchall()
    out: dict[tuple[str, int], list[AlignedSentence]] = {}
    for r in rows:
        bucket = out.setdefault((r[0], int(r[1])), [])
        if len(bucket) < ALIGNED_PER_HIT:
            bucket.append(AlignedSentence(r[2], r[3], r[4], r[5], int(r[6]), r[7], r[8], r[9]))
    return out
