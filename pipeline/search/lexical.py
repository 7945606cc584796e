"""BM25 over original sentences and their English, on DuckDB's `fts` extension.

`search_docs` holds one row per segment with folded, prefix-expanded terms and is kept up to
date incrementally (only segments whose text or English changed are normalised again). The fts
index itself cannot be updated in place, so it is rebuilt from `search_docs` whenever a row
changed: `bench/bench_search.py` measures both halves (the incremental normalisation is what
costs; the rebuild is a few set-based statements).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pipeline.duckdb_ext import load_extension
from pipeline.records import sha256_text
from pipeline.search.normalise import index_text, query_terms

if TYPE_CHECKING:
    import duckdb

    from pipeline.search.filters import SearchFilters

log = logging.getLogger(__name__)

FTS_SCHEMA = "fts_main_search_docs"
_TEMP = "_parallax_search_docs_in"


@dataclass(frozen=True)
class IndexRefresh:
    changed: int  # search_docs rows written
    removed: int  # rows of segments that no longer exist
    rebuilt: bool  # fts index rebuilt
    normalise_s: float
    rebuild_s: float


def _pending_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int, str, str, str]]:
    """(doc_id, article_id, seg_no, lang, original, english) of segments whose indexed text is
    missing or stale. English is the latest translation, '' for English and pending segments."""
    return con.execute(
        """
        WITH en AS (
            SELECT article_id, seg_no, arg_max(text_en, created_at) AS english
            FROM translations WHERE model_id <> 'identity'
            GROUP BY article_id, seg_no
        ), cur AS (
            SELECT s.article_id || ':' || s.seg_no AS doc_id, s.article_id, s.seg_no, s.lang,
                   s.text AS original,
                   CASE WHEN s.lang = 'en' THEN '' ELSE coalesce(en.english, '') END AS english
            FROM segments s LEFT JOIN en USING (article_id, seg_no)
        )
        SELECT cur.doc_id, cur.article_id, cur.seg_no, cur.lang, cur.original, cur.english
        FROM cur LEFT JOIN search_docs d USING (doc_id)
        WHERE d.digest IS NULL OR d.digest <> sha256(cur.original || chr(31) || cur.english)
        """
    ).fetchall()


def index_exists(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_schemas() WHERE schema_name = ?", [FTS_SCHEMA]
        ).fetchall()[0][0]
    )


def refresh_index(con: duckdb.DuckDBPyConnection, *, force_rebuild: bool = False) -> IndexRefresh:
    """Bring `search_docs` up to date with segments and translations, then rebuild the fts
    index if anything changed (or it does not exist yet). Safe to call after every load."""
    import pyarrow as pa

    from pipeline.warehouse import transaction

    t0 = time.perf_counter()
    rows = _pending_rows(con)
    table = pa.table(
        {
            "doc_id": [r[0] for r in rows],
            "article_id": [r[1] for r in rows],
            "seg_no": pa.array([r[2] for r in rows], type=pa.int32()),
            "lang": [r[3] for r in rows],
            "original_terms": [index_text(r[4]) for r in rows],
            "english_terms": [index_text(r[5]) for r in rows],
            "digest": [sha256_text(r[4] + "\x1f" + r[5]) for r in rows],
        }
    )
    con.register(_TEMP, table)
    try:
        with transaction(con):
            con.execute(f"INSERT OR REPLACE INTO search_docs SELECT * FROM {_TEMP}")
            removed = con.execute(
                "DELETE FROM search_docs WHERE (article_id, seg_no) NOT IN "
                "(SELECT (article_id, seg_no) FROM segments)"
            ).fetchall()[0][0]
    finally:
        con.unregister(_TEMP)
    normalise_s = time.perf_counter() - t0
    rebuilt = False
    t1 = time.perf_counter()
    if rows or removed or force_rebuild or not index_exists(con):
        rebuild_index(con)
        rebuilt = True
    refresh = IndexRefresh(len(rows), int(removed), rebuilt, normalise_s, time.perf_counter() - t1)
    log.info(
        "search index: %d doc(s) written, %d removed, rebuilt=%s (%.2fs + %.2fs)",
        refresh.changed,
        refresh.removed,
        refresh.rebuilt,
        refresh.normalise_s,
        refresh.rebuild_s,
    )
    return refresh


def rebuild_index(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the fts index over search_docs. Terms are pre-folded in Python; fts only
    lower-cases, splits on non-letters and Porter-stems (which leaves Hebrew/Arabic alone)."""
    load_extension(con, "fts")
    con.execute(
        "PRAGMA create_fts_index('search_docs', 'doc_id', 'original_terms', 'english_terms', "
        "stemmer = 'porter', stopwords = 'english', ignore = '[^\\p{L}\\p{N}]+', "
        "strip_accents = 0, lower = 1, overwrite = 1)"
    )
    docs = con.execute("SELECT count(*) FROM search_docs").fetchall()[0][0]
    con.execute(
        "INSERT OR REPLACE INTO search_index_state VALUES ('fts', 0, 0, ?, ?)",
        [datetime.now(UTC), docs],
    )


@dataclass(frozen=True)
class LexicalHit:
    article_id: str
    seg_no: int
    score: float


def search_lexical(
    con: duckdb.DuckDBPyConnection,
    query: str,
    filters: SearchFilters,
    *,
    limit: int = 100,
) -> list[LexicalHit]:
    """Best-scoring segment per article, articles by BM25 descending (ties by article id)."""
    terms = query_terms(query)
    if not terms:
        return []
    if not index_exists(con):
        raise RuntimeError("no search index yet: run `parallax search` once with write access")
    load_extension(con, "fts")
    where, params = filters.sql("a")
    rows = con.execute(
        f"""
        WITH scored AS (
            SELECT d.article_id, d.seg_no,
                   {FTS_SCHEMA}.match_bm25(d.doc_id, ?) AS score
            FROM search_docs d
        )
        SELECT s.article_id, arg_max(s.seg_no, s.score) AS seg_no, max(s.score) AS score
        FROM scored s JOIN articles a USING (article_id)
        WHERE s.score IS NOT NULL {where}
        GROUP BY s.article_id
        ORDER BY score DESC, s.article_id
        LIMIT ?
        """,
        [" ".join(terms), *params, limit],
    ).fetchall()
    return [LexicalHit(r[0], int(r[1]), float(r[2])) for r in rows]
