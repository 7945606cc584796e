"""Where the full-text index lives: in the warehouse file, or beside a DuckLake.

On a DuckDB file the BM25 index (schema `lexical_index`: `dict`, `postings`, `docmeta`, ...;
see `pipeline.search.bm25_index`) sits in the warehouse itself. On a DuckLake, `search_docs`
(the folded terms, maintained incrementally by MERGE) stays in the lake, shared by every worker,
and each machine keeps the derived index in a local DuckDB file under the runtime folder,
attached to the connection as `parallax_search` and brought up to the lake's generation by the
same incremental updates (the lake's tables are read in place; a sorted, compacted index with
its many small updates is a poor fit for DuckLake's files, and it is per-machine derived data).
Losing the file costs one rebuild, never a row.

A second process on the same machine that finds the cache file locked (DuckDB allows one
writer per file) builds a private copy for its connection instead, removed when it detaches.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

    from pipeline.settings import Settings

log = logging.getLogger(__name__)

CACHE_ALIAS = "parallax_search"
INDEX_SCHEMA = "lexical_index"
FTS_SCHEMA = "fts_main_search_docs"  # where fts kept the index before layout 5: dropped on rebuild


def is_lake(con: duckdb.DuckDBPyConnection) -> bool:
    """The connection's default catalog is a DuckLake."""
    rows = con.execute(
        "SELECT type FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    return bool(rows) and rows[0][0] == "ducklake"


def cache_attached(con: duckdb.DuckDBPyConnection) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [CACHE_ALIAS]
    ).fetchall()
    return bool(rows[0][0])


def index_db(con: duckdb.DuckDBPyConnection) -> str:
    """The catalog holding the index: the cache beside a DuckLake, else the warehouse."""
    if cache_attached(con):
        return CACHE_ALIAS
    rows = con.execute("SELECT current_database()").fetchall()
    return str(rows[0][0])


def lexical(con: duckdb.DuckDBPyConnection) -> str:
    """Qualified name of the index's schema, for SQL: `"db".lexical_index`."""
    return f'"{index_db(con)}".{INDEX_SCHEMA}'


def cache_path(settings: Settings, catalog: str) -> Path:
    """One cache file per lake (catalog) under the runtime folder."""
    digest = hashlib.sha256(catalog.encode()).hexdigest()[:16]
    return settings.runtime_dir / "search" / f"lake-{digest}.duckdb"


def _is_lock_error(exc: BaseException) -> bool:
    """Another process holds the file (its lock), or another connection of this process has
    it attached (DuckDB's unique file handle)."""
    text = str(exc).lower()
    return ("lock" in text and ("conflict" in text or "could not set" in text)) or (
        "already attached" in text
    )


@contextmanager
def search_index(con: duckdb.DuckDBPyConnection, settings: Settings) -> Iterator[None]:
    """Make the search index reachable from `con` for the `with` block: a no-op on a DuckDB
    file, the local cache attached as `parallax_search` on a DuckLake."""
    if not is_lake(con) or cache_attached(con):
        yield
        return
    import duckdb

    from pipeline.warehouse_backends import lake_catalog

    path = cache_path(settings, lake_catalog(con) or "lake")
    path.parent.mkdir(parents=True, exist_ok=True)
    private: Path | None = None
    try:
        con.execute(f"ATTACH '{_sql(str(path))}' AS {CACHE_ALIAS}")
    except duckdb.Error as exc:
        if not _is_lock_error(exc):
            raise
        private = path.with_name(f"{path.stem}-{os.getpid()}-{id(con):x}.duckdb")
        log.info("search index cache %s is in use: building a private copy %s", path, private)
        con.execute(f"ATTACH '{_sql(str(private))}' AS {CACHE_ALIAS}")
    try:
        yield
    finally:
        with contextlib.suppress(duckdb.Error):  # a closed connection has nothing to detach
            con.execute(f"DETACH {CACHE_ALIAS}")
        if private is not None:
            for leftover in (private, private.with_name(private.name + ".wal")):
                leftover.unlink(missing_ok=True)


def _sql(value: str) -> str:
    return value.replace("'", "''")
