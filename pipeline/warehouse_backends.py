"""Where the warehouse lives: a DuckDB file, or a DuckLake (catalog in PostgreSQL, Parquet data).

`pipeline.warehouse` opens every connection through `open_connection`, so stages, the CLI, the
exports and the DAGs see the same tables on both backends. What differs is kept here:

- the location: `settings.warehouse` is a file path (or ':memory:'), or
  `ducklake:postgres:dbname=… host=…` with its Parquet files under `settings.warehouse_data_path`
  (a local or shared directory, or `s3://…` through httpfs);
- the DDL: DuckLake has no PRIMARY KEY, UNIQUE or CHECK constraints and no indexes, so the same
  migration files are applied with those clauses removed (`ducklake_ddl`), and the natural keys
  the upserts need are read from the constraints the DuckDB form declares (`natural_keys`);
- concurrency: a file has one writer (the warehouse pool has one slot); DuckLake on PostgreSQL
  takes several, and a commit that loses a conflict is rolled back and retried with backoff
  (`retry_conflicts`).

Extensions load from their PyPI packages (`duckdb-extension-ducklake`, `-postgres`, `-httpfs`),
never from the network.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    import duckdb

    from pipeline.settings import Settings

log = logging.getLogger(__name__)

DUCKLAKE_PREFIX = "ducklake:"
LAKE_ALIAS = "parallax_lake"
PG_LOCK_CLASS = 0x5041  # first key of Parallax's advisory locks ("PA")

P = ParamSpec("P")
R = TypeVar("R")


class WarehouseConfigError(ValueError):
    """The warehouse location cannot be used as given (with what to set instead)."""


@dataclass(frozen=True)
class Backend:
    """A parsed warehouse location."""

    kind: str  # "duckdb" or "ducklake"
    target: str  # the file path / ':memory:', or the DuckLake catalog ("postgres:dbname=…")
    data_path: str = ""  # DuckLake only: where the Parquet files go
    writers: int = 1  # concurrent writers the backend takes (the Airflow warehouse pool's slots)

    @property
    def is_lake(self) -> bool:
        return self.kind == "ducklake"


def backend_for(settings: Settings) -> Backend:
    """The backend `settings.warehouse` names; a DuckLake needs a PostgreSQL catalog."""
    target = settings.warehouse.strip()
    if not target.startswith(DUCKLAKE_PREFIX):
        return Backend("duckdb", target, writers=1)
    catalog = target[len(DUCKLAKE_PREFIX) :]
    if not catalog.startswith("postgres:"):
        raise WarehouseConfigError(
            f"unsupported DuckLake catalog {catalog!r}: use ducklake:postgres:dbname=… host=… "
            "(a SQLite catalog loses commits under concurrent writers, a DuckDB one allows one)"
        )
    data_path = settings.warehouse_data_path.strip() or str(settings.runtime_dir / "lake")
    if settings.warehouse_writers < 1:
        raise WarehouseConfigError(
            f"warehouse_writers must be at least 1, got {settings.warehouse_writers}"
        )
    return Backend("ducklake", catalog, data_path, writers=settings.warehouse_writers)


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Load a DuckDB extension from its installed PyPI package (offline)."""
    import duckdb_extensions

    duckdb_extensions.import_extension(name, con=con)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _s3_secret(con: duckdb.DuckDBPyConnection) -> None:
    """An S3 secret from the usual AWS_* variables, when set (else DuckDB's defaults apply)."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not (key and secret):
        return
    parts = [f"KEY_ID {_sql_str(key)}", f"SECRET {_sql_str(secret)}"]
    if os.environ.get("AWS_REGION"):
        parts.append(f"REGION {_sql_str(os.environ['AWS_REGION'])}")
    if os.environ.get("AWS_ENDPOINT_URL"):
        endpoint = re.sub(r"^https?://", "", os.environ["AWS_ENDPOINT_URL"])
        parts.append(f"ENDPOINT {_sql_str(endpoint)}")
        parts.append("URL_STYLE 'path'")
    con.execute(f"CREATE OR REPLACE SECRET parallax_s3 (TYPE s3, {', '.join(parts)})")


def open_connection(
    backend: Backend, settings: Settings, *, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A connection whose default catalog is the warehouse (the file, or the attached lake)."""
    import duckdb

    settings.extension_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {
        "extension_directory": str(settings.extension_dir)
    }
    if not backend.is_lake:
        if backend.target != ":memory:":
            Path(backend.target).parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(backend.target, read_only=read_only, config=config)
    con = duckdb.connect(":memory:", config=config)
    try:
        for ext in ("ducklake", "postgres"):
            load_extension(con, ext)
        options = []
        if backend.data_path.startswith("s3://"):
            load_extension(con, "httpfs")
            _s3_secret(con)
        elif not read_only:
            Path(backend.data_path).mkdir(parents=True, exist_ok=True)
        options.append(f"DATA_PATH {_sql_str(backend.data_path)}")
        if read_only:
            options.append("READ_ONLY")
        con.execute(
            f"ATTACH {_sql_str(DUCKLAKE_PREFIX + backend.target)} AS {LAKE_ALIAS} "
            f"({', '.join(options)})"
        )
        con.execute(f"USE {LAKE_ALIAS}")
    except BaseException:
        con.close()
        raise
    return con


# ---------------------------------------------------------------- DDL


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def _drop_check_clauses(sql: str) -> str:
    """Remove `CHECK (…)` clauses (balanced parentheses), with the comma of a table-level one."""
    out: list[str] = []
    i = 0
    pattern = re.compile(r"(,\s*)?\bCHECK\s*\(", re.IGNORECASE)
    while True:
        m = pattern.search(sql, i)
        if m is None:
            out.append(sql[i:])
            return "".join(out)
        out.append(sql[i : m.start()])
        depth, j = 1, m.end()
        while depth and j < len(sql):
            depth += {"(": 1, ")": -1}.get(sql[j], 0)
            j += 1
        i = j


def ducklake_ddl(sql: str) -> str:
    """The migration `sql` without what DuckLake cannot store: key, unique and check constraints
    and indexes. The DuckDB form keeps them; `natural_keys` reads the keys from there."""
    sql = _strip_comments(sql)
    sql = _drop_check_clauses(sql)
    sql = re.sub(r",\s*(PRIMARY\s+KEY|UNIQUE)\s*\([^)]*\)", "", sql, flags=re.IGNORECASE)
    sql = re.sub(r"\s+(PRIMARY\s+KEY|UNIQUE)\b(?!\s*\()", "", sql, flags=re.IGNORECASE)
    statements = [s for s in sql.split(";") if s.strip()]
    kept = [s for s in statements if not re.match(r"\s*CREATE\s+(UNIQUE\s+)?INDEX\b", s, re.I)]
    return ";\n".join(kept) + (";" if kept else "")


@functools.cache
def _natural_keys(schema_files: tuple[tuple[str, str], ...]) -> dict[str, tuple[str, ...]]:
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        for _name, text in schema_files:
            con.execute(text)
        rows = con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY' AND database_name = current_database()"
        ).fetchall()
    finally:
        con.close()
    return {table: tuple(cols) for table, cols in rows}


def natural_keys(schema_dir: Path, migrations: list[Path]) -> dict[str, tuple[str, ...]]:
    """Each table's natural key, as declared by PRIMARY KEY in the migrations (applied to a
    scratch in-memory DuckDB once per schema): the one source of the keys for both backends."""
    files = tuple((p.name, p.read_text(encoding="utf-8")) for p in migrations)
    return _natural_keys(files)


# ---------------------------------------------------------------- conflicts


def is_conflict(exc: BaseException) -> bool:
    """A commit that lost to a concurrent writer (DuckLake) or a write-write conflict (DuckDB)."""
    import duckdb

    if not isinstance(exc, duckdb.Error):
        return False
    text = str(exc).lower()
    return "conflict" in text and ("transaction" in text or "commit" in text)


def retry_conflicts(
    retries: int = 8, backoff_s: float = 0.05, max_backoff_s: float = 5.0
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Re-run a whole load (its reads and its one transaction) when its commit loses a conflict.

    Loads are idempotent by natural key, so a re-run after a concurrent commit gives the rows
    one run would have; only a conflict is retried, any other error propagates at once.
    """

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            delay = backoff_s
            for attempt in range(retries + 1):
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    if not is_conflict(exc) or attempt == retries:
                        raise
                    log.info(
                        "%s: commit conflict, retry %d in %.2fs", fn.__name__, attempt + 1, delay
                    )
                    time.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, max_backoff_s)
            raise AssertionError("unreachable")

        return run

    return wrap


def merge_sql(
    table: str,
    columns: list[str],
    keys: tuple[str, ...],
    source: str,
    *,
    update: bool = True,
) -> str:
    """`MERGE INTO table` from `source` on the natural key: the one upsert both backends run
    with the same result (INSERT OR REPLACE / ON CONFLICT need a key constraint DuckLake lacks).
    `update=False` keeps an existing row as it is (ON CONFLICT DO NOTHING)."""
    missing = [k for k in keys if k not in columns]
    if not keys or missing:
        raise ValueError(f"upsert into {table} needs its key columns {keys}, got {columns}")
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)  # keys are NOT NULL
    cols = ", ".join(columns)
    values = ", ".join(f"s.{c}" for c in columns)
    sql = f"MERGE INTO {table} AS t USING ({source}) AS s ON {on} "
    rest = [c for c in columns if c not in keys]
    if update and rest:
        sql += "WHEN MATCHED THEN UPDATE SET " + ", ".join(f"{c} = s.{c}" for c in rest) + " "
    return sql + f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})"


def lake_files(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(data files, delete files) of the lake: what compaction brings down."""
    row = con.execute(
        "SELECT coalesce(sum(file_count), 0), coalesce(sum(delete_file_count), 0) "
        f"FROM ducklake_table_info('{LAKE_ALIAS}')"
    ).fetchall()[0]
    return int(row[0]), int(row[1])


def lake_maintenance(
    con: duckdb.DuckDBPyConnection, *, older_than_days: float = 7.0
) -> dict[str, int]:
    """What the maintenance DAG runs on a DuckLake: move rows inlined in the catalog into Parquet,
    merge small adjacent files, expire snapshots older than `older_than_days` (time travel
    further back is given up) and delete the files no snapshot references any more."""
    files_before, deletes_before = lake_files(con)
    con.execute(f"CALL ducklake_flush_inlined_data('{LAKE_ALIAS}')").fetchall()
    merged = con.execute(f"CALL ducklake_merge_adjacent_files('{LAKE_ALIAS}')").fetchall()
    expired = con.execute(
        f"CALL ducklake_expire_snapshots('{LAKE_ALIAS}', "
        f"older_than => now() - INTERVAL '{float(older_than_days) * 86400:.0f} seconds')"
    ).fetchall()
    cleaned = con.execute(
        f"CALL ducklake_cleanup_old_files('{LAKE_ALIAS}', cleanup_all => true)"
    ).fetchall()
    files_after, deletes_after = lake_files(con)
    return {
        "files_before": files_before,
        "files_after": files_after,
        "delete_files_before": deletes_before,
        "delete_files_after": deletes_after,
        "merge_calls": len(merged),
        "expired_snapshots": len(expired),
        "deleted_files": len(cleaned),
    }


# ---------------------------------------------------------------- writer locks


def lake_catalog(con: duckdb.DuckDBPyConnection) -> str | None:
    """The PostgreSQL conninfo of the DuckLake `con` writes to; None for a DuckDB file."""
    rows = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database() "
        "AND type = 'ducklake'"
    ).fetchall()
    if not rows or not str(rows[0][0]).startswith("postgres:"):
        return None
    return str(rows[0][0])[len("postgres:") :]


def _lock_id(catalog: str, table: str) -> int:
    import zlib

    return zlib.crc32(f"parallax:{catalog}:{table}".encode()) & 0x7FFFFFFF


@contextmanager
def table_locks(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock per table written, from before a load's reads until after
    its commit. DuckLake has no keys: two concurrent upserts of the same new key would both
    insert it, so writers of one table take turns on their read-merge-commit step, while
    writers of other tables, and all work outside the loads, run at the same time. Locks are
    taken in one sorted order (no deadlock) and are a no-op on a DuckDB file (one writer)."""
    catalog = lake_catalog(con)
    if catalog is None:
        yield
        return
    import psycopg2

    ids = sorted({_lock_id(catalog, t) for t in tables})
    pg = psycopg2.connect(catalog)
    try:
        pg.autocommit = True
        with pg.cursor() as cur:
            for lock_id in ids:
                cur.execute("SELECT pg_advisory_lock(%s, %s)", (PG_LOCK_CLASS, lock_id))
        yield
    finally:
        pg.close()  # ends the session: its advisory locks go with it


def writes(*tables: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A load `fn(con, …)` that writes `tables`: under their locks, re-run on a lost commit."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def locked(*args: P.args, **kwargs: P.kwargs) -> R:
            con = args[0] if args else kwargs["con"]
            with table_locks(con, tables):  # type: ignore[arg-type]
                return fn(*args, **kwargs)

        return retry_conflicts()(locked)

    return wrap
