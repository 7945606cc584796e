"""Cross-language search on the multilingual e5 vectors the aligner already stored.

The query is embedded with e5's "query: " prefix and compared with the article vectors
(`article_vectors`, title + lead of the ORIGINAL text), so an English query finds Hebrew and
Arabic articles while their translations are still pending. Within the best articles the
matching sentence is picked on the sentence vectors (`segment_vectors`) where the linker
stored them.

Exact cosine, not an approximate (HNSW) index: the article vectors are held in memory as one
normalised float32 matrix (`pipeline.search.vector_index`), loaded once per process and reused
while the warehouse's vectors are unchanged, so a query is one matrix-vector product and a
partial sort, with the language, time and outlet filters applied as masks before the top-k.
In bench/bench_search.py this is many times faster than the same exact scan in SQL
(`list_cosine_similarity` over FLOAT[]; kept as `scan=True`, the reference the tests compare
with), and a vss HNSW index was no faster than the SQL scan at 10,000 articles after a build
of minutes, returns fewer than k hits under a filter, and needs experimental persistence.
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
    sentences: bool = True,
    scan: bool = False,
) -> list[SemanticHit]:
    """Articles by cosine to the query (exact), each with its closest sentence when
    `sentences`. `scan=True` runs the same exact search as a SQL scan (the reference)."""
    if scan:
        rows = _scan(con, query_vec, embedder_name, filters, limit=limit, min_score=min_score)
    else:
        from pipeline.search.vector_index import article_matrix

        matrix = article_matrix(con, embedder_name)
        rows = matrix.top_k(query_vec, filters, limit, min_score=min_score)
    if not rows:
        return []
    ids = [r[0] for r in rows]
    best = best_sentences(con, query_vec, embedder_name, ids, scan=scan) if sentences else {}
    return [SemanticHit(r[0], best.get(r[0]), float(r[1])) for r in rows]


def _scan(
    con: duckdb.DuckDBPyConnection,
    query_vec: np.ndarray,
    embedder_name: str,
    filters: SearchFilters,
    *,
    limit: int,
    min_score: float | None,
) -> list[tuple[str, float]]:
    where, params = filters.sql("a")
    floor = "" if min_score is None else " AND score >= ?"
    qv = [float(x) for x in query_vec]
    return [
        (r[0], float(r[1]))
        for r in con.execute(
            f"""
            SELECT article_id, score FROM (
                SELECT v.article_id, list_cosine_similarity(v.vector, ?::FLOAT[]) AS score
                FROM article_vectors v JOIN articles a USING (article_id)
                WHERE v.embedder = ? AND list_dot_product(v.vector, v.vector) > 0 {where}
            ) WHERE true {floor}
            ORDER BY score DESC, article_id
            LIMIT ?
            """,
            [qv, embedder_name, *params, *([min_score] if min_score is not None else []), limit],
        ).fetchall()
    ]


def best_sentences(
    con: duckdb.DuckDBPyConnection,
    query_vec: np.ndarray,
    embedder_name: str,
    article_ids: list[str],
    *,
    scan: bool = False,
) -> dict[str, int]:
    """The sentence closest to the query in each article, where sentence vectors exist: from
    the in-memory sentence matrix, or (`scan=True`) in SQL. The SQL form reads the vector
    column of every row group it touches (DuckDB has no late materialisation here): about a
    second per query at 200,000 sentences."""
    if not article_ids:
        return {}
    if not scan:
        from pipeline.search.vector_index import sentence_matrix

        return sentence_matrix(con, embedder_name).best(query_vec, list(article_ids))
    return {
        r[0]: int(r[1])
        for r in con.execute(
            """
            SELECT article_id, arg_max(seg_no, list_cosine_similarity(vector, ?::FLOAT[]))
            FROM segment_vectors
            WHERE embedder = ? AND article_id IN (SELECT unnest(?))
            GROUP BY article_id
            """,
            [[float(x) for x in query_vec], embedder_name, list(article_ids)],
        ).fetchall()
    }


def has_vectors(con: duckdb.DuckDBPyConnection, embedder_name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM article_vectors WHERE embedder = ?", [embedder_name]
        ).fetchall()[0][0]
    )
