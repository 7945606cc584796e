"""The BM25 index over `search_docs`, kept up to date by what changed since it was last updated.

DuckDB's fts extension can only rebuild its index whole: at 20,000 articles (280,000 sentences)
that is ~23 s after every scheduled run, growing with history. This module keeps its own tables
instead, in the catalog `index_store` chooses (the warehouse file, or the local cache beside a
DuckLake), schema `INDEX_SCHEMA`:

- `dict (termid, term, df)`: every term with its document frequency;
- `postings (termid, docid, tf, len)`: term frequency per (term, document), with the document's
  length (fixed for a docid's life: a rewritten document gets a new docid), sorted by term so
  that a query reads only its terms' row groups and needs no other table to score them. New documents are appended as an unsorted tail; when
  the tail (rows appended plus rows deleted since the last sort) passes `compact_fraction` of
  the table, it is rewritten sorted, so the amortised cost stays proportional to new documents;
- `docmeta (docid, doc_id, article_id, seg_no, lang, outlet_id, published_at, version, len)`:
  each document's length and the filter columns (no join to `articles` at query time);
- `stats (num_docs, total_len)`, `stopwords (sw)` and `built`, the one-row state: layout, the
  `search_docs` generation the index covers, the articles marker, the next ids, the tail size.

BM25 (k1 = 1.2, b = 0.75) is computed at query time from tf, len, df and the stats, so adding a
document never rewrites another's rows. Tokens are exactly those of `create_fts_index` with the
settings the index used before (`FTS_OPTIONS`): lower-cased, split on `IGNORE`, fts's English
stop words dropped, Porter-stemmed by fts's own `stem()`, tf summed over both text columns
(tests/test_search_incremental.py builds the real fts index and compares).

Which documents changed survives crashes: `_write_docs` stamps every row it writes with a new
`search_docs.generation` in the transaction that writes it (migration 016), and an update reads
the rows past the generation recorded in `built`; documents that vanished are found by an
anti-join, run only when the counts show that some did. Each update (and a full rebuild) is one
transaction in the index catalog: a crash leaves the previous index whole, and the next refresh
applies everything past its generation.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline import faults
from pipeline.duckdb_ext import load_extension
from pipeline.search.index_store import FTS_SCHEMA, INDEX_SCHEMA, index_db, lexical

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

INDEX_LAYOUT = 5  # bump when the tables change: an index of another layout is rebuilt
STEMMER = "porter"
IGNORE = r"[^\p{L}\p{N}]+"  # what separates tokens (fts `ignore`)
FIELDS = ("original_terms", "english_terms")
COMPACT_FRACTION = 0.05  # re-sort postings when the unsorted tail passes this share of it
# The options the fts index was built with (and the reference test builds it with again).
FTS_OPTIONS = (
    f"stemmer = '{STEMMER}', stopwords = 'english', ignore = '{IGNORE}', "
    "strip_accents = 0, lower = 1, overwrite = 1"
)
_SCRATCH = ("_changed", "_old", "_oldp", "_tf", "_termdf", "_newdocs")


@dataclass(frozen=True)
class IndexUpdate:
    """What one update did: the counts say how much work it was, whatever the timing."""

    rebuilt: bool  # built from scratch (first build, other layout, or forced)
    indexed: int  # documents tokenised into the index (new or rewritten)
    dropped: int  # documents whose earlier postings were removed (rewritten or vanished)
    vanished: int  # of those, documents no longer in search_docs
    postings_added: int
    postings_removed: int
    meta_updated: int  # documents whose filter columns followed an edited article
    compacted: bool  # postings re-sorted
    postings: int  # rows in postings afterwards

    @property
    def meta_only(self) -> bool:
        return not self.rebuilt and not self.indexed and not self.dropped and self.meta_updated > 0


@dataclass(frozen=True)
class Built:
    layout: int
    generation: int
    articles: int
    versions: int
    next_docid: int
    next_termid: int
    sorted_rows: int  # postings rows at the last sort
    dirty_rows: int  # rows appended or deleted since


NOTHING = IndexUpdate(False, 0, 0, 0, 0, 0, 0, False, 0)


def fts_pragma(table: str = "search_docs") -> str:
    """The `create_fts_index` call whose tokens and scores this index reproduces."""
    fields = ", ".join(f"'{f}'" for f in FIELDS)
    return f"PRAGMA create_fts_index('{table}', 'doc_id', {fields}, {FTS_OPTIONS})"


@functools.cache
def fts_stopwords() -> tuple[str, ...]:
    """fts's English stop words, read from the `stopwords` table `create_fts_index` fills (in a
    scratch in-memory database): the list the extension itself uses, not a copy of it."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        load_extension(con, "fts")
        con.execute("CREATE TABLE t (id INTEGER, s VARCHAR)")
        con.execute("INSERT INTO t VALUES (1, 'x')")
        con.execute("PRAGMA create_fts_index('t', 'id', 's', stopwords = 'english')")
        rows = con.execute("SELECT DISTINCT sw FROM fts_main_t.stopwords ORDER BY sw").fetchall()
    finally:
        con.close()
    return tuple(r[0] for r in rows)


def _home(con: duckdb.DuckDBPyConnection) -> str:
    return str(con.execute("SELECT current_database()").fetchall()[0][0])


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
            "AND table_name = ?",
            [index_db(con), INDEX_SCHEMA, table],
        ).fetchall()[0][0]
    )


def read_built(con: duckdb.DuckDBPyConnection) -> Built | None:
    """The index's state; None when there is no complete index of this layout."""
    if not _exists(con, "built"):
        return None
    rows = con.execute(f"SELECT * FROM {lexical(con)}.built").fetchall()
    if not rows or rows[0][0] != INDEX_LAYOUT:
        return None
    return Built(*(int(x) for x in rows[0]))


def generation(con: duckdb.DuckDBPyConnection) -> int:
    """The `search_docs` change counter (bumped by every write of search_docs)."""
    rows = con.execute("SELECT generation FROM search_index_state WHERE name = 'fts'").fetchall()
    return int(rows[0][0]) if rows else 0


def articles_marker(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(articles, sum of versions): moves whenever an article is added or edited, the only
    times its language, outlet or time (docmeta) can change."""
    row = con.execute("SELECT count(*), coalesce(sum(version), 0) FROM articles").fetchall()[0]
    return int(row[0]), int(row[1])


def update(
    con: duckdb.DuckDBPyConnection,
    *,
    force_rebuild: bool = False,
    compact_fraction: float = COMPACT_FRACTION,
) -> IndexUpdate:
    """Bring the index up to `search_docs` and `articles`: incrementally when a complete index
    of this layout exists, else (or when forced, or when it does not add up) from scratch. One
    transaction either way."""
    load_extension(con, "fts")  # stem()
    built = read_built(con)
    if (
        not force_rebuild
        and built is not None
        and built.generation == generation(con)
        and (built.articles, built.versions) == articles_marker(con)
    ):
        return NOTHING
    try:
        return _update(con, force_rebuild=force_rebuild, compact_fraction=compact_fraction)
    except OutOfStep as exc:  # derived data: rebuilt, never trusted when it does not add up
        log.warning("search index out of step with search_docs (%s): rebuilding it", exc)
        return _update(con, force_rebuild=True, compact_fraction=compact_fraction)


class OutOfStep(RuntimeError):
    """The index does not add up with search_docs (e.g. a lake recreated under a cache)."""


def _update(
    con: duckdb.DuckDBPyConnection, *, force_rebuild: bool, compact_fraction: float
) -> IndexUpdate:
    from pipeline.warehouse import transaction

    with transaction(con):
        # read again inside the transaction: one snapshot of search_docs, its generation and
        # the index
        gen, marker, built = generation(con), articles_marker(con), read_built(con)
        if force_rebuild or built is None:
            _create(con)
            built = Built(INDEX_LAYOUT, -1, 0, 0, 0, 0, 0, 0)
            result = _apply(con, built, gen, marker, compact_fraction, rebuilt=True)
        elif gen < built.generation:
            raise OutOfStep(f"generation {gen} is behind the index's {built.generation}")
        else:
            result = _apply(con, built, gen, marker, compact_fraction, rebuilt=False)
        faults.point("search.index.before_commit")
    return result


def _create(con: duckdb.DuckDBPyConnection) -> None:
    """Empty index tables (the old ones, and an fts index of an earlier layout, dropped)."""
    catalog, home = index_db(con), _home(con)
    s = lexical(con)
    con.execute(f'DROP SCHEMA IF EXISTS "{catalog}".{FTS_SCHEMA} CASCADE')
    if catalog != home:  # the copy of the lake's search_docs the fts index was built from
        con.execute(f'DROP TABLE IF EXISTS "{catalog}".main.search_docs')
    con.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")
    con.execute(f"CREATE SCHEMA {s}")
    con.execute(f"CREATE TABLE {s}.stopwords (sw VARCHAR)")
    con.execute(f"INSERT INTO {s}.stopwords SELECT unnest(?::VARCHAR[])", [list(fts_stopwords())])
    con.execute(f"CREATE TABLE {s}.dict (termid INTEGER, term VARCHAR, df BIGINT)")
    con.execute(
        f"CREATE TABLE {s}.postings (termid INTEGER, docid INTEGER, tf INTEGER, len INTEGER)"
    )
    con.execute(
        f"CREATE TABLE {s}.docmeta (docid INTEGER, doc_id VARCHAR, article_id VARCHAR, "
        "seg_no INTEGER, lang VARCHAR, outlet_id VARCHAR, published_at TIMESTAMPTZ, "
        "version INTEGER, len INTEGER)"
    )
    con.execute(f"CREATE TABLE {s}.stats (num_docs BIGINT, total_len BIGINT)")
    con.execute(f"INSERT INTO {s}.stats VALUES (0, 0)")
    con.execute(
        f"CREATE TABLE {s}.built (layout INTEGER, generation BIGINT, articles BIGINT, "
        "versions BIGINT, next_docid BIGINT, next_termid BIGINT, sorted_rows BIGINT, "
        "dirty_rows BIGINT)"
    )


def _tokens(column: str) -> str:
    """fts's `tokenize` macro with lower = 1, strip_accents = 0, over one column."""
    split = f"regexp_replace(lower({column}), '{IGNORE}', ' ', 'g')"
    return f"unnest(string_split_regex({split}, '\\s+'))"


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> int:
    return int(con.execute(sql, params).fetchall()[0][0] or 0)


def _apply(
    con: duckdb.DuckDBPyConnection,
    built: Built,
    gen: int,
    marker: tuple[int, int],
    compact_fraction: float,
    *,
    rebuilt: bool,
) -> IndexUpdate:
    """Index the search_docs rows written after `built.generation` and drop what they replace
    or what vanished; then the docmeta of edited articles, stats, compaction and `built`. Runs
    inside the caller's transaction; every write goes to the index catalog."""
    s = lexical(con)
    home = f'"{_home(con)}".main'
    docs, arts = f"{home}.search_docs", f"{home}.articles"
    where = "" if rebuilt else "WHERE generation > ?"
    con.execute(
        f"CREATE TABLE {s}._changed AS SELECT doc_id, article_id, seg_no, "
        f"{', '.join(FIELDS)} FROM {docs} {where}",
        [] if rebuilt else [built.generation],
    )
    changed = _count(con, f"SELECT count(*) FROM {s}._changed")
    # documents of the index that go: rewritten ones (their doc_id is among the changed) ...
    con.execute(
        f"CREATE TABLE {s}._old AS SELECT m.docid, m.len, false AS vanished FROM {s}.docmeta m "
        f"SEMI JOIN {s}._changed c USING (doc_id)"
    )
    rewritten = _count(con, f"SELECT count(*) FROM {s}._old")
    # ... and vanished ones: |search_docs| = |index| - vanished + new, so the anti-join over
    # all documents runs only when that count says some vanished
    indexed_before = _count(con, f"SELECT num_docs FROM {s}.stats")
    vanished = indexed_before + (changed - rewritten) - _count(con, f"SELECT count(*) FROM {docs}")
    if vanished < 0:
        raise OutOfStep(f"{-vanished} document(s) of search_docs unaccounted for")
    if vanished:
        found = _count(
            con,
            f"INSERT INTO {s}._old SELECT m.docid, m.len, true FROM {s}.docmeta m "
            f"ANTI JOIN {docs} d USING (doc_id)",
        )
        if found != vanished:
            raise OutOfStep(f"{found} document(s) vanished, {vanished} expected")
    dropped = rewritten + vanished
    removed_postings = 0
    if dropped:
        con.execute(
            f"CREATE TABLE {s}._oldp AS SELECT termid, count(*) AS n FROM {s}.postings "
            f"WHERE docid IN (SELECT docid FROM {s}._old) GROUP BY termid"
        )
        con.execute(
            f"UPDATE {s}.dict AS d SET df = d.df - o.n FROM {s}._oldp o WHERE d.termid = o.termid"
        )
        removed_postings = _count(
            con, f"DELETE FROM {s}.postings WHERE docid IN (SELECT docid FROM {s}._old)"
        )
        con.execute(f"DELETE FROM {s}.docmeta WHERE docid IN (SELECT docid FROM {s}._old)")
    # tokens of the changed documents, as create_fts_index makes them
    tokens = " UNION ALL ".join(
        f"SELECT doc_id, {_tokens(f)} AS w FROM {s}._changed" for f in FIELDS
    )
    con.execute(
        f"""
        CREATE TABLE {s}._tf AS
        WITH tok AS ({tokens})
        SELECT doc_id, stem(w, '{STEMMER}') AS term, count(*)::INTEGER AS tf
        FROM tok
        WHERE w IS NOT NULL AND len(w) > 0 AND w NOT IN (SELECT sw FROM {s}.stopwords)
        GROUP BY ALL
        """
    )
    # every changed document gets a new docid (a rewritten one's old rows are gone above);
    # a document without a single token still counts in num_docs, with length 0, as in fts
    con.execute(
        f"""
        CREATE TABLE {s}._newdocs AS
        SELECT c.doc_id, c.article_id, c.seg_no,
               (? + row_number() OVER (ORDER BY c.doc_id) - 1)::INTEGER AS docid,
               coalesce(l.len, 0)::INTEGER AS len
        FROM {s}._changed c
        LEFT JOIN (SELECT doc_id, sum(tf) AS len FROM {s}._tf GROUP BY doc_id) l USING (doc_id)
        """,
        [built.next_docid],
    )
    con.execute(
        f"CREATE TABLE {s}._termdf AS SELECT term, count(*) AS n FROM {s}._tf GROUP BY term"
    )
    con.execute(
        f"UPDATE {s}.dict AS d SET df = d.df + t.n FROM {s}._termdf t WHERE d.term = t.term"
    )
    new_terms = _count(
        con,
        f"""
        INSERT INTO {s}.dict
        SELECT (? + row_number() OVER (ORDER BY t.term) - 1)::INTEGER AS termid, t.term, t.n
        FROM {s}._termdf t ANTI JOIN {s}.dict d USING (term)
        ORDER BY termid
        """,
        [built.next_termid],
    )
    if dropped:  # terms whose every document went
        con.execute(f"DELETE FROM {s}.dict WHERE df = 0")
    added_postings = _count(
        con,
        f"""
        INSERT INTO {s}.postings
        SELECT d.termid, n.docid, t.tf, n.len
        FROM {s}._tf t JOIN {s}.dict d USING (term) JOIN {s}._newdocs n USING (doc_id)
        ORDER BY d.termid, n.docid
        """,
    )
    con.execute(
        f"""
        INSERT INTO {s}.docmeta
        SELECT n.docid, n.doc_id, n.article_id, n.seg_no, a.lang, a.outlet_id, a.published_at,
               a.version, n.len
        FROM {s}._newdocs n LEFT JOIN {arts} a USING (article_id)
        ORDER BY n.docid
        """
    )
    meta_updated = 0
    # articles change language, outlet or time only when edited (load_articles bumps version):
    # sum(version) - count(*) counts edits, so the join over all documents runs only when it
    # moved, or when articles went away
    edits, built_edits = marker[1] - marker[0], built.versions - built.articles
    if not rebuilt and (edits != built_edits or marker[0] < built.articles):
        # an edited article whose sentences did not change: its filter columns follow
        meta_updated = _count(
            con,
            f"""
            UPDATE {s}.docmeta AS m SET lang = a.lang, outlet_id = a.outlet_id,
                   published_at = a.published_at, version = a.version
            FROM {arts} a
            WHERE m.article_id = a.article_id AND m.version IS DISTINCT FROM a.version
            """,
        )
    con.execute(
        f"""
        UPDATE {s}.stats SET
            num_docs = num_docs - (SELECT count(*) FROM {s}._old)
                       + (SELECT count(*) FROM {s}._newdocs),
            total_len = total_len - (SELECT coalesce(sum(len), 0) FROM {s}._old)
                        + (SELECT coalesce(sum(len), 0) FROM {s}._newdocs)
        """
    )
    rows = _count(con, f"SELECT count(*) FROM {s}.postings")
    sorted_rows, dirty = built.sorted_rows, built.dirty_rows + added_postings + removed_postings
    compacted = False
    if rebuilt:  # inserted in (termid, docid) order into empty tables: sorted already
        sorted_rows, dirty = rows, 0
    elif dirty > compact_fraction * max(sorted_rows, 1):
        _compact(con)
        sorted_rows, dirty, compacted = rows, 0, True
    for table in _SCRATCH:
        con.execute(f"DROP TABLE IF EXISTS {s}.{table}")
    con.execute(f"DELETE FROM {s}.built")
    con.execute(
        f"INSERT INTO {s}.built VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            INDEX_LAYOUT,
            gen,
            *marker,
            built.next_docid + changed,
            built.next_termid + new_terms,
            sorted_rows,
            dirty,
        ],
    )
    result = IndexUpdate(
        rebuilt=rebuilt,
        indexed=changed,
        dropped=dropped,
        vanished=vanished,
        postings_added=added_postings,
        postings_removed=removed_postings,
        meta_updated=meta_updated,
        compacted=compacted,
        postings=rows,
    )
    log.debug("search index update: %s", result)
    return result


def compact(con: duckdb.DuckDBPyConnection) -> int:
    """Re-sort the index now (what an update does by itself once the tail is large enough);
    returns the postings rows. For benches and maintenance: results do not change."""
    from pipeline.warehouse import transaction

    s = lexical(con)
    with transaction(con):
        _compact(con)
        rows = _count(con, f"SELECT count(*) FROM {s}.postings")
        con.execute(f"UPDATE {s}.built SET sorted_rows = ?, dirty_rows = 0", [rows])
    return rows


def _compact(con: duckdb.DuckDBPyConnection) -> None:
    """Rewrite postings sorted by term (the tail merged in, deleted rows gone), docmeta by
    docid and dict by term: what keeps a query on its terms' row groups."""
    s = lexical(con)
    for table, order in (("postings", "termid, docid"), ("docmeta", "docid"), ("dict", "term")):
        con.execute(
            f"CREATE OR REPLACE TABLE {s}.{table} AS SELECT * FROM {s}.{table} ORDER BY {order}"
        )


def index_rows(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
    """The index's content by names, not ids (docids and termids depend on the order documents
    arrived in): what a full rebuild and any sequence of updates must agree on."""
    s = lexical(con)
    queries = {
        "postings": f"SELECT d.term, m.doc_id, p.tf FROM {s}.postings p "
        f"JOIN {s}.dict d USING (termid) JOIN {s}.docmeta m USING (docid)",
        "dict": f"SELECT term, df FROM {s}.dict",
        "docmeta": f"SELECT doc_id, article_id, seg_no, lang, outlet_id, published_at, version, "
        f"len FROM {s}.docmeta",
        "stats": f"SELECT num_docs, total_len FROM {s}.stats",
    }
    return {k: sorted(con.execute(q).fetchall(), key=repr) for k, q in queries.items()}


__all__ = [
    "COMPACT_FRACTION",
    "FTS_OPTIONS",
    "INDEX_LAYOUT",
    "IndexUpdate",
    "compact",
    "fts_pragma",
    "fts_stopwords",
    "index_rows",
    "read_built",
    "update",
]
