"""Cross-language search on the multilingual e5 vectors the aligner already stored.

The query is embedded with e5's "query: " prefix and compared with the article vectors
(`article_vectors`, title + lead of the ORIGINAL text), so an English query finds Hebrew and
Arabic articles while their translations are still pending. Within the best articles the
matching sentence is picked on the sentence vectors (`segment_vectors`) where the linker
stored them.

Exact cosine in DuckDB, not an HNSW index: in bench/bench_search.py at 10,000 articles an
HNSW query was no faster than the exact scan (1.0x) after a build of minutes, and the exact scan
applies the language, time and outlet filters inside the same scan (an HNSW top-k filtered
afterwards can return fewer than k) and needs neither vss's experimental index persistence nor
an index to maintain. At 100,000 articles the SQL scan is the slowest part of a query (README,
Benchmarks); holding the vectors in an in-process matrix is the measured next step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import duckdb

    from pipeline.align.vectors import Embedder
    from pipeline.search.filters import SearchFilters

log = logging.getLogger(__name__)


class SemanticUnavailable(RuntimeError):
    """No embedder can run here, or the warehouse holds no vectors of this embedder."""


def embed_query(embedder: Embedder, query: str) -> np.ndarray:
    """The query's vector: e5 models get their "query: " prefix (asymmetric retrieval)."""
    fn = getattr(embedder, "embed_query", None)
    if callable(fn):
        vec = np.asarray(fn(query), dtype=np.float32).reshape(-1)
    else:
        vec = embedder.embed([query])[0]
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


@dataclass(frozen=True)
class SemanticHit:
    article_id: str
    seg_no: int | None  # best sentence, when sentence vectors exist
    score: float  # cosine of query and article vector


def search_semantic(
    con: duckdb.DuckDBPyConnection,
    query_vec: np.ndarray,
    embedder_name: str,
    filters: SearchFilters,
    *,
    limit: int = 100,
    min_score: float | None = None,
) -> list[SemanticHit]:
    """Articles by cosine to the query (exact scan), each with its closest sentence."""
    where, params = filters.sql("a")
    floor = "" if min_score is None else " AND score >= ?"
    qv = [float(x) for x in query_vec]
    rows = con.execute(
        f"""
        SELECT article_id, score FROM (
            SELECT v.article_id, list_cosine_similarity(v.vector, ?::FLOAT[]) AS score
            FROM article_vectors v JOIN articles a USING (article_id)
            WHERE v.embedder = ? {where}
        ) WHERE true {floor}
        ORDER BY score DESC, article_id
        LIMIT ?
        """,
        [qv, embedder_name, *params, *([min_score] if min_score is not None else []), limit],
    ).fetchall()
    if not rows:
        return []
    best = dict(
        (r[0], int(r[1]))
        for r in con.execute(
            """
            SELECT article_id, arg_max(seg_no, list_cosine_similarity(vector, ?::FLOAT[]))
            FROM segment_vectors
            WHERE embedder = ? AND article_id IN (SELECT unnest(?))
            GROUP BY article_id
            """,
            [qv, embedder_name, [r[0] for r in rows]],
        ).fetchall()
    )
    return [SemanticHit(r[0], best.get(r[0]), float(r[1])) for r in rows]


def has_vectors(con: duckdb.DuckDBPyConnection, embedder_name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM article_vectors WHERE embedder = ?", [embedder_name]
        ).fetchall()[0][0]
    )
