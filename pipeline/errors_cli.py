"""Turn the errors a user can act on into :class:`~pipeline.errors.ParallaxError` for the CLI.

Our own code raises ParallaxError subclasses directly; a few errors come from elsewhere with a
known meaning (DuckDB's "database does not exist" and lock messages, an unknown event id, a bad
model registry) and are translated here, so the CLI prints one line with the fix.
"""

from __future__ import annotations

import re

from pipeline.errors import ConfigError, NoWarehouse, ParallaxError, WarehouseBusy

_HOLDER = re.compile(r"held in (?P<prog>\S+) \(PID (?P<pid>\d+)\)(?: by user (?P<user>\S+))?")
_MISSING_DB = re.compile(r'database "(?P<path>[^"]+)".*does not exist', re.IGNORECASE)
_MAKE_ONE = "run `parallax demo` (the bundled sample) or `parallax run` (your outlets) first"


def lock_holder(text: str) -> str:
    """Who holds a DuckDB file lock, as DuckDB's message names it ("" when it does not)."""
    m = _HOLDER.search(text)
    if not m:
        return ""
    user = f", user {m['user'].rstrip('.')}" if m["user"] else ""
    return f"{m['prog']} (PID {m['pid']}{user})"


def as_user_error(exc: BaseException) -> ParallaxError | None:
    """The user-facing form of ``exc``, or None for an unexpected error (a bug: traceback)."""
    if isinstance(exc, ParallaxError):
        return exc
    from pipeline.warehouse import WarehouseLocked

    if isinstance(exc, WarehouseLocked):
        holder = lock_holder(str(exc))
        where = str(exc).split(" is locked")[0]
        who = f" by {holder}" if holder else " by another process"
        return WarehouseBusy(
            f"the warehouse {where} is locked{who}",
            "wait for it to finish (a run or an Airflow task), or stop it, then retry",
        )
    try:
        import duckdb
    except ImportError:  # pragma: no cover - duckdb is a dependency
        return None
    if isinstance(exc, duckdb.IOException):
        m = _MISSING_DB.search(str(exc))
        if m:
            return NoWarehouse(f"no warehouse at {m['path']}", _MAKE_ONE)
        holder = lock_holder(str(exc))
        if holder:
            return WarehouseBusy(
                f"the warehouse is locked by {holder}", "wait for it to finish, or stop it"
            )
    from pipeline.export.side_by_side import UnknownEvent

    if isinstance(exc, UnknownEvent):
        return ParallaxError(
            str(exc),
            'list event ids with `parallax sql "select event_id, label from events"`',
        )
    from pipeline.translate.registry import RegistryError

    if isinstance(exc, RegistryError):
        return ConfigError(str(exc), "correct the registry (models/README.md explains each field)")
    return None
