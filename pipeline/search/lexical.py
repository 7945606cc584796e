"""BM25 over original sentences and their English: keeping `search_docs` current, and queries.

`search_docs` holds one row per segment with folded, prefix-expanded terms and is kept up to
date incrementally (only segments whose text or English changed are normalised again, written
by MERGE so the same code runs on a DuckDB file and on a DuckLake). Every write stamps its rows
with a new generation in the same transaction, and `pipeline.search.bm25_index` then brings the
BM25 tables (`dict`, `postings` sorted by term, `docmeta` with the filter columns, `stats`) up
to that generation by what changed, never by rebuilding from all of history. Where the index
lives (the warehouse file, or a local cache beside a DuckLake) is
`pipeline.search.index_store`'s business.
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline import faults
from pipeline.duckdb_ext import load_extension
from pipeline.records import sha256_text
from pipeline.search import bm25_index
from pipeline.search.bm25_index import INDEX_LAYOUT, STEMMER
from pipeline.search.index_store import INDEX_SCHEMA, cache_attached, is_lake, lexical
from pipeline.search.normalise import index_text, match_keys, query_terms

if TYPE_CHECKING:
    import duckdb

    from pipeline.search.filters import SearchFilters

log = logging.getLogger(__name__)

__all__ = [
    "INDEX_LAYOUT",
    "INDEX_SCHEMA",
    "IndexRefresh",
    "refresh_index",
    "search_lexical",
    "match_all_words",
]

_TEMP = "_parallax_search_docs_in"
_DOC_COLUMNS = [
    "doc_id",
    "article_id",
    "seg_no",
    "lang",
    "original_terms",
    "english_terms",
    "digest",
]


class SearchIndexMissing(RuntimeError):
    """No usable full-text index here (never built, or a DuckLake without its local cache)."""


@dataclass(frozen=True)
class IndexRefresh:
    changed: int  # search_docs rows written
    removed: int  # rows of segments that no longer exist
    rebuilt: bool  # index built from scratch (first build, new layout, or forced)
    normalise_s: float
    rebuild_s: float  # seconds spent on the index (an update or a rebuild)
    meta_only: bool = False  # only docmeta refreshed (article metadata moved, no text did)
    index: bm25_index.IndexUpdate = bm25_index.NOTHING  # what the index update did


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
    """A complete index of this layout is reachable from `con`."""
    return bm25_index.read_built(con) is not None


def _write_docs(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Normalise the pending segments and write them to `search_docs` (MERGE by doc_id), drop
    the rows of vanished segments, and bump the generation in the same transaction."""
    import pyarrow as pa

    from pipeline.warehouse import merge_from, transaction

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
            # the rows written now carry the generation this transaction commits: the index
            # update reads what is past its own generation, so a crash before it loses nothing
            gen = bm25_index.generation(con) + 1
            if rows:
                merge_from(
                    con,
                    "search_docs",
                    [*_DOC_COLUMNS, "generation"],
                    f"SELECT *, ?::BIGINT AS generation FROM {_TEMP}",
                    [gen],
                )
            removed = con.execute(
                "DELETE FROM search_docs WHERE (article_id, seg_no) NOT IN "
                "(SELECT (article_id, seg_no) FROM segments)"
            ).fetchall()[0][0]
            if rows or removed:
                merge_from(
                    con,
                    "search_index_state",
                    ["name", "generation", "built_gen", "built_at", "docs"],
                    "SELECT 'fts' AS name, ?::BIGINT AS generation, "
                    "coalesce(max(built_gen), 0) AS built_gen, max(built_at) AS built_at, "
                    "max(docs) AS docs FROM search_index_state WHERE name = 'fts'",
                    [gen],
                )
    finally:
        con.unregister(_TEMP)
    return len(rows), int(removed)


def refresh_index(
    con: duckdb.DuckDBPyConnection,
    *,
    force_rebuild: bool = False,
    compact_fraction: float = bm25_index.COMPACT_FRACTION,
) -> IndexRefresh:
    """Bring `search_docs` up to date with segments and translations, then the BM25 index up to
    `search_docs` by what changed since its last update (built from scratch the first time, for
    a new layout, or with `force_rebuild`). Safe to call after every load, on a DuckDB file or
    (with `index_store.search_index`) a DuckLake."""
    from pipeline.warehouse_backends import writes

    if is_lake(con) and not cache_attached(con):
        raise SearchIndexMissing(
            "a DuckLake keeps its search index beside it: open it with "
            "pipeline.search.index_store.search_index(con, settings)"
        )
    t0 = time.perf_counter()
    changed, removed = writes("search_docs", "search_index_state")(_write_docs)(con)
    normalise_s = time.perf_counter() - t0
    faults.point("search.index.after_docs")
    t1 = time.perf_counter()
    update = bm25_index.update(con, force_rebuild=force_rebuild, compact_fraction=compact_fraction)
    refresh = IndexRefresh(
        changed,
        removed,
        update.rebuilt,
        normalise_s,
        time.perf_counter() - t1,
        update.meta_only,
        update,
    )
    log.info(
        "search index: %d doc(s) written, %d removed; index %s %d doc(s), dropped %d, "
        "meta %d%s (%.2fs + %.2fs)",
        refresh.changed,
        refresh.removed,
        "rebuilt with" if update.rebuilt else "updated",
        update.indexed,
        update.dropped,
        update.meta_updated,
        ", compacted" if update.compacted else "",
        refresh.normalise_s,
        refresh.rebuild_s,
    )
    return refresh


@dataclass(frozen=True)
class LexicalHit:
    article_id: str
    seg_no: int
    score: float


# BM25 (k1 = 1.2, b = 0.75, the fts defaults) summed over the query's terms, computed from each
# posting's tf and its document's length (both fixed for a docid's life), the term's df and the
# index's stats (so that adding documents never rewrites old rows), reading only the postings
# row groups of those terms (the join on termid pushes them into the scan as a filter); an
# article's best sentence is its highest-scoring (ties: the first, so results are repeatable).
# The same scores as a `postings` of precomputed weights over fts's tables (what layout 4
# stored), and ln(10) times fts's `match_bm25` macro (which takes `log`, base 10 in DuckDB).
# Unlike the macro it also serves all-words matching: the macro counts stop words among the
# query's tokens, so with `conjunctive := 1` a query containing "the" never matches. The query's
# terms come folded and split by `normalise` (letters and digits only: exactly the fts
# tokenizer's tokens), lower-cased as fts does, stop words dropped, then Porter-stemmed as at
# index time.
def _bm25_sql(s: str, where: str) -> str:
    return f"""
    WITH tok AS (
        SELECT DISTINCT lower(unnest(?::VARCHAR[])) AS w
    ), q AS (
        SELECT DISTINCT stem(w, '{STEMMER}') AS t FROM tok
        WHERE w <> '' AND w NOT IN (SELECT sw FROM {s}.stopwords)
    ), st AS (
        SELECT num_docs, total_len / num_docs AS avgdl FROM {s}.stats
    ), qt AS (
        SELECT d.termid, ln((st.num_docs - d.df + 0.5) / (d.df + 0.5) + 1) AS idf
        FROM {s}.dict d JOIN q ON d.term = q.t CROSS JOIN st
    ), sc AS (
        SELECT p.docid,
               sum(qt.idf * (p.tf * 2.2) / (p.tf + 1.2 * (0.25 + 0.75 * p.len / st.avgdl)))
                   AS score
        FROM {s}.postings p JOIN qt USING (termid) CROSS JOIN st
        GROUP BY p.docid
        HAVING NOT ? OR count(*) = (SELECT count(*) FROM q)
    )
    SELECT m.article_id, first(m.seg_no ORDER BY sc.score DESC, m.seg_no) AS seg_no,
           max(sc.score) AS score
    FROM sc JOIN {s}.docmeta m USING (docid)
    WHERE true {where}
    GROUP BY m.article_id
    ORDER BY score DESC, m.article_id
"""


_FTS_LOADED: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()


def _ensure_fts(con: duckdb.DuckDBPyConnection) -> None:
    """fts (for `stem`) loaded in `con`: checked once per connection, not per query."""
    if con not in _FTS_LOADED:
        load_extension(con, "fts")
        _FTS_LOADED.add(con)


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
    import duckdb

    _ensure_fts(con)
    where, params = filters.sql("m")
    sql = _bm25_sql(lexical(con), where) + ("LIMIT ?" if limit is not None else "")
    args = [list(terms), conjunctive, *params, *([limit] if limit is not None else [])]
    try:  # no catalog look-up on the way: the index is there but once in a lifetime
        rows = con.execute(sql, args).fetchall()
    except duckdb.CatalogException as exc:
        raise SearchIndexMissing(
            f"no search index yet: run `parallax search` once with write access ({exc})"
        ) from exc
    return [(r[0], int(r[1]), float(r[2])) for r in rows]


def search_lexical(
    con: duckdb.DuckDBPyConnection,
    query: str,
    filters: SearchFilters,
    *,
    limit: int = 100,
) -> list[LexicalHit]:
    """Best-scoring sentence per article (ties: the first), articles by BM25 descending (ties by
    article id).
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
