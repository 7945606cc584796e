"""BM25 over original sentences and their English, on DuckDB's `fts` extension.

`search_docs` holds one row per segment with folded, prefix-expanded terms and is kept up to
date incrementally (only segments whose text or English changed are normalised again, written
by MERGE so the same code runs on a DuckDB file and on a DuckLake). The fts index itself cannot
be updated in place, so it is rebuilt from `search_docs` whenever a row changed, together with
two tables derived from it that make a query cheap at 100,000 articles:

- `postings (termid, docid, weight)`, sorted by term: each term's BM25 contribution to each
  sentence, computed once per rebuild from fts's `terms`, `docs`, `dict` and `stats`. A query
  reads only the row groups of its terms instead of joining the 4-million-row `terms` table
  (bench/bench_search.py: the same scores, several times faster);
- `docmeta (docid, article_id, seg_no, lang, outlet_id, published_at)`: the language, outlet and
  time filters apply here, without a join to `articles`.

A `built` row written last records the `search_docs` generation, the articles' version sum and
the layout it was built from, so a crash part-way or a layout change rebuilds on the next
refresh. Where the index lives (the warehouse file, or a local cache beside a DuckLake) is
`pipeline.search.index_store`'s business.
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.duckdb_ext import load_extension
from pipeline.records import sha256_text
from pipeline.search.index_store import CACHE_ALIAS, FTS_SCHEMA, cache_attached, fts, is_lake
from pipeline.search.normalise import index_text, match_keys, query_terms

if TYPE_CHECKING:
    import duckdb

    from pipeline.search.filters import SearchFilters

log = logging.getLogger(__name__)

__all__ = ["FTS_SCHEMA", "IndexRefresh", "refresh_index", "search_lexical", "match_all_words"]

INDEX_LAYOUT = 4  # bump when the derived tables change: an index of another layout is rebuilt
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
    rebuilt: bool  # fts index rebuilt
    normalise_s: float
    rebuild_s: float
    meta_only: bool = False  # only docmeta refreshed (article metadata moved, no text did)


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


def _table_exists(con: duckdb.DuckDBPyConnection, db: str, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
            "AND table_name = ?",
            [db, schema, table],
        ).fetchall()[0][0]
    )


def _index_catalog(con: duckdb.DuckDBPyConnection) -> str:
    if cache_attached(con):
        return CACHE_ALIAS
    return str(con.execute("SELECT current_database()").fetchall()[0][0])


def _built(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int] | None:
    """(generation, articles, version sum) the index was built at; None when there is no
    complete index of this layout."""
    if not _table_exists(con, _index_catalog(con), FTS_SCHEMA, "built"):
        return None
    rows = con.execute(f"SELECT layout, generation, articles, versions FROM {fts(con)}.built")
    got = rows.fetchall()
    if not got or got[0][0] != INDEX_LAYOUT:
        return None
    return int(got[0][1]), int(got[0][2]), int(got[0][3])


def index_exists(con: duckdb.DuckDBPyConnection) -> bool:
    return _built(con) is not None


def _generation(con: duckdb.DuckDBPyConnection) -> int:
    rows = con.execute("SELECT generation FROM search_index_state WHERE name = 'fts'").fetchall()
    return int(rows[0][0]) if rows else 0


def _articles_version(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(articles, sum of versions): moves whenever an article is added or edited, the only
    times its language, outlet or time (docmeta) can change."""
    row = con.execute("SELECT count(*), coalesce(sum(version), 0) FROM articles").fetchall()[0]
    return int(row[0]), int(row[1])


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
            if rows:
                merge_from(con, "search_docs", _DOC_COLUMNS, f"SELECT * FROM {_TEMP}")
            removed = con.execute(
                "DELETE FROM search_docs WHERE (article_id, seg_no) NOT IN "
                "(SELECT (article_id, seg_no) FROM segments)"
            ).fetchall()[0][0]
            if rows or removed:
                # committed with the docs: a crash before the rebuild leaves the index's built
                # generation behind, so the next refresh rebuilds instead of keeping it stale
                merge_from(
                    con,
                    "search_index_state",
                    ["name", "generation", "built_gen", "built_at", "docs"],
                    "SELECT 'fts' AS name, coalesce(max(generation), 0) + 1 AS generation, "
                    "coalesce(max(built_gen), 0) AS built_gen, max(built_at) AS built_at, "
                    "max(docs) AS docs FROM search_index_state WHERE name = 'fts'",
                )
    finally:
        con.unregister(_TEMP)
    return len(rows), int(removed)


def refresh_index(con: duckdb.DuckDBPyConnection, *, force_rebuild: bool = False) -> IndexRefresh:
    """Bring `search_docs` up to date with segments and translations, then rebuild the fts
    index if anything changed since it was built (or it does not exist yet). Safe to call
    after every load, on a DuckDB file or (with `index_store.search_index`) a DuckLake."""
    from pipeline.warehouse_backends import writes

    if is_lake(con) and not cache_attached(con):
        raise SearchIndexMissing(
            "a DuckLake keeps its search index beside it: open it with "
            "pipeline.search.index_store.search_index(con, settings)"
        )
    t0 = time.perf_counter()
    changed, removed = writes("search_docs", "search_index_state")(_write_docs)(con)
    normalise_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    built = _built(con)
    generation = _generation(con)
    articles = _articles_version(con)
    rebuilt = meta_only = False
    if force_rebuild or built is None or built[0] != generation:
        rebuild_index(con, generation, articles)
        rebuilt = True
    elif (built[1], built[2]) != articles:
        _write_meta(con, generation, articles)
        meta_only = True
    refresh = IndexRefresh(
        changed, removed, rebuilt, normalise_s, time.perf_counter() - t1, meta_only
    )
    log.info(
        "search index: %d doc(s) written, %d removed, rebuilt=%s (%.2fs + %.2fs)",
        refresh.changed,
        refresh.removed,
        refresh.rebuilt,
        refresh.normalise_s,
        refresh.rebuild_s,
    )
    return refresh


def _docmeta_sql(con: duckdb.DuckDBPyConnection) -> str:
    f = fts(con)
    docs = f'"{_index_catalog(con)}".main.search_docs'
    return f"""
        CREATE OR REPLACE TABLE {f}.docmeta AS
        SELECT dd.docid, sd.article_id, sd.seg_no, a.lang, a.outlet_id, a.published_at
        FROM {f}.docs dd JOIN {docs} sd ON sd.doc_id = dd.name
        JOIN articles a ON a.article_id = sd.article_id
        ORDER BY dd.docid
    """


def _write_built(
    con: duckdb.DuckDBPyConnection, generation: int, articles: tuple[int, int]
) -> None:
    f = fts(con)
    con.execute(
        f"CREATE OR REPLACE TABLE {f}.built AS SELECT ?::INTEGER AS layout, "
        "?::BIGINT AS generation, ?::BIGINT AS articles, ?::BIGINT AS versions, "
        f"(SELECT count(*) FROM {f}.docs) AS docs",
        [INDEX_LAYOUT, generation, *articles],
    )


def _write_meta(con: duckdb.DuckDBPyConnection, generation: int, articles: tuple[int, int]) -> None:
    from pipeline.warehouse import transaction

    with transaction(con):
        con.execute(_docmeta_sql(con))
        _write_built(con, generation, articles)


def rebuild_index(
    con: duckdb.DuckDBPyConnection,
    generation: int | None = None,
    articles: tuple[int, int] | None = None,
) -> None:
    """(Re)create the fts index over search_docs, then `postings`, `docmeta` and `built`. Terms
    are pre-folded in Python; fts only lower-cases, splits on non-letters and Porter-stems
    (which leaves Hebrew/Arabic alone). Beside a DuckLake, `search_docs` is copied into the
    local cache first and the index built there."""
    load_extension(con, "fts")
    generation = _generation(con) if generation is None else generation
    articles = _articles_version(con) if articles is None else articles
    home = str(con.execute("SELECT current_database()").fetchall()[0][0])
    catalog = _index_catalog(con)
    # No enclosing transaction: fts builds its tables far slower inside one (136 s against
    # 8 s at 10,000 articles). `built`, written last, is what marks the index complete.
    if catalog != home:
        con.execute(
            f'CREATE OR REPLACE TABLE "{catalog}".main.search_docs AS '
            f'SELECT * FROM "{home}".main.search_docs'
        )
        con.execute(f'USE "{catalog}"')
    try:
        con.execute(
            "PRAGMA create_fts_index('search_docs', 'doc_id', 'original_terms', "
            "'english_terms', stemmer = 'porter', stopwords = 'english', "
            "ignore = '[^\\p{L}\\p{N}]+', strip_accents = 0, lower = 1, overwrite = 1)"
        )
    finally:
        if catalog != home:
            con.execute(f'USE "{home}"')
    f = fts(con)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {f}.postings AS
        WITH tf AS (
            SELECT termid, docid, count(*) AS tf FROM {f}.terms GROUP BY termid, docid
        )
        SELECT tf.termid, tf.docid,
               ln((st.num_docs - d.df + 0.5) / (d.df + 0.5) + 1)
               * (tf.tf * 2.2) / (tf.tf + 1.2 * (0.25 + 0.75 * dd.len / st.avgdl)) AS weight
        FROM tf JOIN {f}.dict d USING (termid) JOIN {f}.docs dd USING (docid)
        CROSS JOIN {f}.stats st
        ORDER BY tf.termid, tf.docid
        """
    )
    con.execute(_docmeta_sql(con))
    _write_built(con, generation, articles)


@dataclass(frozen=True)
class LexicalHit:
    article_id: str
    seg_no: int
    score: float


# BM25 (k1 = 1.2, b = 0.75, the fts defaults) summed over the query's terms from `postings`,
# reading only the row groups of those terms. Same scores as fts's `match_bm25` macro, but it
# also serves all-words matching: the macro counts stop words among the query's tokens, so with
# `conjunctive := 1` a query containing "the" never matches. The query's terms come folded and
# split by `normalise` (letters and digits only: exactly the fts tokenizer's tokens, so its
# macro, a few ms per query, is not needed), lower-cased as fts does, stop words dropped, then
# Porter-stemmed as at index time.
def _bm25_sql(f: str, where: str) -> str:
    return f"""
    WITH tok AS (
        SELECT DISTINCT lower(unnest(?::VARCHAR[])) AS w
    ), q AS (
        SELECT DISTINCT stem(w, 'porter') AS t FROM tok
        WHERE w <> '' AND w NOT IN (SELECT sw FROM {f}.stopwords)
    ), qt AS (
        SELECT d.termid FROM {f}.dict d JOIN q ON d.term = q.t
    ), sc AS (
        SELECT p.docid, sum(p.weight) AS score
        FROM {f}.postings p WHERE p.termid IN (SELECT termid FROM qt)
        GROUP BY p.docid
        HAVING NOT ? OR count(*) = (SELECT count(*) FROM q)
    )
    SELECT m.article_id, arg_max(m.seg_no, sc.score) AS seg_no, max(sc.score) AS score
    FROM sc JOIN {f}.docmeta m USING (docid)
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
    sql = _bm25_sql(fts(con), where) + ("LIMIT ?" if limit is not None else "")
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
