"""Every table's rows, for tests that compare whole warehouses (kill trials, both backends)."""

from __future__ import annotations

from typing import Any

from pipeline.settings import Settings

# Columns that record when a row was written, not what it says.
CLOCK_COLUMNS = frozenset(
    {
        "first_seen_at",
        "updated_at",
        "seen_at",
        "created_at",
        "applied_at",
        "fetched_at",
        "saved_at",
        "seen_through",
        "last_success_at",
        "last_failure_at",
        "retry_after",
        "built_at",
        "last_attempt",
        "sent_at",
    }
)


def table_rows(con: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the connection's database and schema (clock columns left out), its rows
    sorted, duplicates kept. Other schemas (the fts index's) are left out."""
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = current_schema() ORDER BY table_name"
        ).fetchall()
    ]
    out = {}
    for table in tables:
        cols = [
            c
            for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                "AND database_name = current_database() AND schema_name = current_schema() "
                "ORDER BY column_index",
                [table],
            ).fetchall()
            if c not in CLOCK_COLUMNS
        ]
        rows = con.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()
        out[table] = sorted(rows, key=repr)
    return out


def dump(settings: Settings) -> dict[str, list[str]]:
    """`table_rows` of a warehouse, each row as its repr (JSON-friendly, for child processes)."""
    from pipeline import warehouse

    with warehouse.open_warehouse(settings, read_only=True) as con:
        return {t: [repr(r) for r in rows] for t, rows in table_rows(con).items()}
