"""BM25 over original sentences and their English, on DuckDB's `fts` extension.

`search_docs` holds one row per segment with folded, prefix-expanded terms and is kept up to
date incrementally (only segments whose text or English changed are normalised again). The fts
index itself cannot be updated in place, so it is rebuilt from `search_docs` whenever a row
changed: `bench/bench_search.py` measures both halves (the incremental normalisation is what
costs at small sizes, the rebuild dominates at large ones).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pipeline.duckdb_ext import load_extension
from pipeline.records import sha256_text
from pipeline.search.normalise import index_text, match_keys, query_terms

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
            if rows or removed:
                # committed with the docs: a crash before the rebuild leaves generation ahead of
                # built_gen, so the next refresh rebuilds instead of keeping a stale index
                con.execute(
                    "INSERT OR REPLACE INTO search_index_state SELECT 'fts', "
                    "coalesce(max(generation), 0) + 1, coalesce(max(built_gen), 0), "
                    "max(built_at), max(docs) FROM search_index_state WHERE name = 'fts'"
                )
    finally:
        con.unregister(_TEMP)
    normalise_s = time.perf_counter() - t0
    rebuilt = False
    t1 = time.perf_counter()
    state = con.execute(
        "SELECT generation, built_gen FROM search_index_state WHERE name = 'fts'"
    ).fetchall()
    stale = not state or state[0][0] != state[0][1]
    if rows or removed or force_rebuild or stale or not index_exists(con):
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
        "INSERT OR REPLACE INTO search_index_state SELECT 'fts', g, g, ?, ? FROM "
        "(SELECT coalesce(max(generation), 0) AS g FROM search_index_state WHERE name = 'fts')",
        [datetime.now(UTC), docs],
    )


@dataclass(frozen=True)
class LexicalHit:
    article_id: str
    seg_no: int
    score: float


# BM25 (k1 = 1.2, b = 0.75, the fts defaults) computed set-based on the index tables, reading
# only the postings of the query's terms. Same scores as fts's `match_bm25` macro, but it also
# serves all-words matching: the macro counts stop words among the query's tokens, so with
# `conjunctive := 1` a query containing "the" never matches. Speed is on a par with the macro
# (bench/bench_search.py prints both). Tokens are the fts tokenizer's, stop words dropped, then
# Porter-stemmed as at index time.
_BM25 = f"""
    WITH tok AS (
        SELECT DISTINCT unnest({FTS_SCHEMA}.tokenize(?)) AS w
    ), q AS (
        SELECT DISTINCT stem(w, 'porter') AS t FROM tok
        WHERE w <> '' AND w NOT IN (SELECT sw FROM {FTS_SCHEMA}.stopwords)
    ), qt AS (
        SELECT d.termid, d.df FROM {FTS_SCHEMA}.dict d JOIN q ON d.term = q.t
    ), tf AS (
        SELECT te.docid, te.termid, count(*) AS tf
        FROM {FTS_SCHEMA}.terms te JOIN qt USING (termid)
        GROUP BY te.docid, te.termid
    ), cd AS (
        SELECT docid FROM tf GROUP BY docid
        HAVING NOT ? OR count(DISTINCT termid) = (SELECT count(*) FROM q)
    ), sc AS (
        SELECT tf.docid,
               sum(ln((st.num_docs - qt.df + 0.5) / (qt.df + 0.5) + 1)
                   * (tf.tf * 2.2) / (tf.tf + 1.2 * (0.25 + 0.75 * dd.len / st.avgdl))) AS score
        FROM tf JOIN cd USING (docid) JOIN qt USING (termid)
        JOIN {FTS_SCHEMA}.docs dd ON dd.docid = tf.docid
        CROSS JOIN {FTS_SCHEMA}.stats st
        GROUP BY tf.docid
    )
    SELECT sd.article_id, sd.seg_no, sc.score
    FROM sc JOIN {FTS_SCHEMA}.docs dd USING (docid)
    JOIN search_docs sd ON sd.doc_id = dd.name
"""


def _article_scores(
    con: duckdb.DuckDBPyConnection,
    terms: list[str],
    filters: SearchFilters,
    *,
    conjunctive: bool,
    limit: int | None,
) -> list[tuple[str, int, float]]:
    if not terms:
        return []
    if not index_exists(con):
        raise RuntimeError("no search index yet: run `parallax search` once with write access")
    load_extension(con, "fts")
    where, params = filters.sql("a")
    rows = con.execute(
        f"""
        WITH hits AS ({_BM25})
        SELECT h.article_id, arg_max(h.seg_no, h.score) AS seg_no, max(h.score) AS score
        FROM hits h JOIN articles a USING (article_id)
        WHERE true {where}
        GROUP BY h.article_id
        ORDER BY score DESC, h.article_id
        {"LIMIT ?" if limit is not None else ""}
        """,
        [" ".join(terms), conjunctive, *params, *([limit] if limit is not None else [])],
    ).fetchall()
    return [(r[0], int(r[1]), float(r[2])) for r in rows]


def search_lexical(
    con: duckdb.DuckDBPyConnection,
    query: str,
    filters: SearchFilters,
    *,
    limit: int = 100,
) -> list[LexicalHit]:
    """Best-scoring sentence per article, articles by BM25 descending (ties by article id).
    Any query word matches (surface or stripped form); more words, more score."""
    rows = _article_scores(con, query_terms(query), filters, conjunctive=False, limit=limit)
    return [LexicalHit(*r) for r in rows]


def match_all_words(
    con: duckdb.DuckDBPyConnection, query: str, filters: SearchFilters
) -> dict[str, tuple[int, float]]:
    """Articles with a sentence containing every word of `query` (in any prefixed form, or in
    its English): article_id -> (best seg_no, BM25). What a lexical watch alerts on."""
    rows = _article_scores(con, match_keys(query), filters, conjunctive=True, limit=None)
    return {r[0]: (r[1], r[2]) for r in rows}
