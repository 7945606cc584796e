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
    if qv is not None and embedder is not None:
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
        seg.update(best_sentences(con, qv, embedder.name, lacking, scan=scan))
    lex_rank = {a: i for i, a in enumerate(lex_ids, start=1)}
    sem_rank = {a: i for i, a in enumerate(sem_ids, start=1)}
    hits = _hydrate(con, order, seg, scores, lex_rank, sem_rank, with_aligned=with_aligned)
    # grouped by event: an event's hits follow its best hit
    first: dict[str, int] = {}
    for i, hit in enumerate(hits):
        first.setdefault(hit.event_id or hit.article_id, i)
    hits.sort(key=lambda h: (first[h.event_id or h.article_id], -h.score, h.article_id))
    return SearchResult(query, used, hits, notes)


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
    """The hits' cards: article, event, outlet, sentence and English, and the linked sentences
    of other outlets. Three queries, each reading only the rows of the few articles involved:
    a filter `list_contains(ids, article_id)` is evaluated inside the scan, which then fetches
    the other columns of the matching rows only, where a join against the ids reads every
    row's columns (DuckDB looks up no batch of keys in an index); at 100,000 articles, with ids
    in no particular order on disk, that is several times cheaper."""
    if not order:
        return []
    keys = [(a, seg.get(a, 0)) for a in order]
    links = _links(con, keys) if with_aligned else []
    ids = list(dict.fromkeys([a for a, _ in keys] + [link[2] for link in links]))
    cards = _articles(con, ids)
    sentences = _sentences(con, ids)
    aligned: dict[tuple[str, int], list[AlignedSentence]] = {}
    for aid, sno, oid, oseg, score in links:
        other, sentence = cards.get(oid), sentences.get((oid, oseg))
        if other is None or sentence is None:
            continue
        aligned.setdefault((aid, sno), []).append(
            AlignedSentence(
                other[2], other[3], sentence[1] or "", oid, oseg, sentence[0], sentence[2], score
            )
        )
    for bucket in aligned.values():
        bucket.sort(key=lambda al: (-al.score, al.outlet_id))
    hits: list[SearchHit] = []
    for aid, sno in keys:
        card = cards.get(aid)
        if card is None:
            continue
        sentence = sentences.get((aid, sno))
        hits.append(
            SearchHit(
                event_id=card[0],
                event_label=card[1],
                article_id=aid,
                outlet=card[2],
                outlet_id=card[3],
                lang=card[4] or "",
                published_at=card[5],
                title=card[6] or "",
                url=card[7],
                seg_no=sno,
                original=(sentence[0] if sentence else None) or card[6] or "",
                english=sentence[2] if sentence else None,
                score=float(scores.get(aid, 0.0)),
                lexical_rank=lex_rank.get(aid),
                semantic_rank=sem_rank.get(aid),
                aligned=aligned.get((aid, sno), [])[:ALIGNED_PER_HIT],
            )
        )
    return hits


def _links(
    con: duckdb.DuckDBPyConnection, keys: list[tuple[str, int]]
) -> list[tuple[str, int, str, int, float]]:
    """(article, sentence, other article, other sentence, score) for the keys' sentences, from
    either side of the stored pair."""
    wanted = set(keys)
    rows = con.execute(
        "SELECT article_a, seg_a, article_b, seg_b, score FROM segment_links "
        "WHERE list_contains($ids, article_a) OR list_contains($ids, article_b)",
        {"ids": list(dict.fromkeys(a for a, _ in keys))},
    ).fetchall()
    out: list[tuple[str, int, str, int, float]] = []
    for a, sa, b, sb, score in rows:
        if (a, sa) in wanted:
            out.append((a, int(sa), b, int(sb), float(score)))
        if (b, sb) in wanted:
            out.append((b, int(sb), a, int(sa), float(score)))
    return out


def _articles(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """article_id -> (event_id, event label, outlet name, outlet_id, lang, published_at, title,
    url)."""
    rows = con.execute(
        """
        WITH a AS (
            SELECT article_id, outlet_id, lang, published_at, title, url FROM articles
            WHERE list_contains($ids, article_id)
        ), ea AS (
            SELECT article_id, event_id FROM event_articles WHERE list_contains($ids, article_id)
        )
        SELECT a.article_id, ea.event_id, e.label, coalesce(o.name, a.outlet_id), a.outlet_id,
               a.lang, a.published_at, a.title, a.url
        FROM a LEFT JOIN ea USING (article_id)
        LEFT JOIN events e ON e.event_id = ea.event_id
        LEFT JOIN outlets o ON o.outlet_id = a.outlet_id
        """,
        {"ids": ids},
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _sentences(
    con: duckdb.DuckDBPyConnection, ids: list[str]
) -> dict[tuple[str, int], tuple[str, str | None, str | None]]:
    """(article_id, seg_no) -> (text, lang, English: the text itself for English, the latest
    translation otherwise, None while pending) for every sentence of the articles."""
    rows = con.execute(
        """
        WITH s AS (
            SELECT article_id, seg_no, text, lang FROM segments
            WHERE list_contains($ids, article_id)
        ), t AS (
            SELECT article_id, seg_no, arg_max(text_en, created_at) AS english
            FROM translations
            WHERE list_contains($ids, article_id) AND model_id <> 'identity'
            GROUP BY article_id, seg_no
        )
        SELECT s.article_id, s.seg_no, s.text, s.lang,
               CASE WHEN s.lang = 'en' THEN s.text ELSE t.english END
        FROM s LEFT JOIN t USING (article_id, seg_no)
        """,
        {"ids": ids},
    ).fetchall()
    return {(r[0], int(r[1])): (r[2], r[3], r[4]) for r in rows}
