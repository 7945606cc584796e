"""Watches kept in the warehouse (`watches`), so every entry point (CLI, DAG) sees the same."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

TARGET_KINDS = ("webhook", "email", "file")
WATCH_MODES = ("hybrid", "lexical", "semantic")


class WatchError(ValueError):
    """A watch definition is invalid or names no stored watch."""


@dataclass(frozen=True)
class Watch:
    name: str
    query: str
    mode: str = "hybrid"
    langs: tuple[str, ...] = ()
    min_outlets: int = 1
    min_score: float | None = None
    notify: tuple[str, ...] = ()
    created_at: datetime | None = None  # coverage first seen from then on alerts


def parse_target(target: str) -> tuple[str, str]:
    """'webhook:URL', 'email:ADDRESS' or 'file:PATH' -> (kind, address), validated."""
    kind, sep, address = target.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in TARGET_KINDS or not address.strip():
        raise WatchError(
            f"bad notify target {target!r}: use webhook:URL, email:ADDRESS or file:PATH"
        )
    address = address.strip()
    if kind == "webhook" and not address.startswith(("http://", "https://")):
        raise WatchError(f"webhook target needs an http(s) URL, got {address!r}")
    if kind == "email" and "@" not in address:
        raise WatchError(f"email target needs an address, got {address!r}")
    return kind, address


def add_watch(con: duckdb.DuckDBPyConnection, watch: Watch) -> Watch:
    """Store a new watch (a name is unique). created_at defaults to now: only coverage that
    arrives afterwards alerts, unless an earlier time is given (a deliberate backfill)."""
    if not watch.name.strip() or not watch.query.strip():
        raise WatchError("a watch needs a name and a query")
    if watch.mode not in WATCH_MODES:
        raise WatchError(f"unknown mode {watch.mode!r}: use one of {', '.join(WATCH_MODES)}")
    if watch.min_outlets < 1:
        raise WatchError("--min-outlets must be at least 1")
    for target in watch.notify:
        parse_target(target)
    if get_watch(con, watch.name) is not None:
        raise WatchError(f"a watch named {watch.name!r} exists; remove it first")
    created = watch.created_at or datetime.now(UTC)
    con.execute(
        "INSERT INTO watches (name, query, mode, langs, min_outlets, min_score, notify, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            watch.name,
            watch.query,
            watch.mode,
            list(watch.langs) or None,
            watch.min_outlets,
            watch.min_score,
            list(watch.notify),
            created,
        ],
    )
    return Watch(**{**watch.__dict__, "created_at": created})


def _from_row(row: tuple[Any, ...]) -> Watch:
    name, query, mode, langs, min_outlets, min_score, notify, created = row
    return Watch(
        str(name),
        str(query),
        str(mode),
        tuple(langs or ()),
        int(min_outlets),
        None if min_score is None else float(min_score),
        tuple(notify or ()),
        created,
    )


_COLS = "name, query, mode, langs, min_outlets, min_score, notify, created_at"


def list_watches(con: duckdb.DuckDBPyConnection) -> list[Watch]:
    return [
        _from_row(r) for r in con.execute(f"SELECT {_COLS} FROM watches ORDER BY name").fetchall()
    ]


def get_watch(con: duckdb.DuckDBPyConnection, name: str) -> Watch | None:
    rows = con.execute(f"SELECT {_COLS} FROM watches WHERE name = ?", [name]).fetchall()
    return _from_row(rows[0]) if rows else None


def remove_watch(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop a watch with its alert ledger and pending deliveries."""
    from pipeline.warehouse import transaction

    if get_watch(con, name) is None:
        raise WatchError(f"no watch named {name!r}")
    with transaction(con):
        for table in ("alert_deliveries", "alerts", "watches"):
            column = "name" if table == "watches" else "watch"
            con.execute(f"DELETE FROM {table} WHERE {column} = ?", [name])
