"""Blindspots: events one side covered and another stayed silent on (the `blindspots` view).

One query for every reader: `parallax blindspots`, the report site's filter.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

KINDS = ("language", "group")


def fetch_blindspots(
    con: duckdb.DuckDBPyConnection,
    *,
    min_outlets: int = 2,
    since: datetime | None = None,
    kinds: tuple[str, ...] = KINDS,
) -> list[dict[str, Any]]:
    """Rows of the `blindspots` view for events covered by at least `min_outlets` outlets,
    broadest first, in a stable order."""
    sql = (
        "SELECT event_id, label, first_seen, kind, silent, silent_outlets, covered_by, "
        "covering_outlets, outlets FROM blindspots WHERE outlets >= ? "
        "AND kind IN (SELECT unnest(?))"
    )
    params: list[Any] = [min_outlets, list(kinds)]
    if since is not None:
        sql += " AND last_seen >= ?"
        params.append(since)
    sql += " ORDER BY outlets DESC, first_seen DESC, event_id, kind, silent"
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
