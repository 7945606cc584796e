"""`parallax blindspots`: events one side covered and another stayed silent on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

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
    """Rows of the `blindspots` view for events covered by at least `min_outlets` outlets."""
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


def register(app: typer.Typer) -> None:
    @app.command("blindspots")
    def blindspots_cmd(
        since: Annotated[datetime | None, typer.Option(help="Events seen since then")] = None,
        min_outlets: Annotated[
            int, typer.Option(help="Only events covered by at least this many outlets")
        ] = 2,
        kind: Annotated[str | None, typer.Option(help="language or group (default: both)")] = None,
        fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    ) -> None:
        """Events covered in some languages (or by some outlet groups) and by none in another:
        who covered it, who stayed silent."""
        from rich.table import Table

        from pipeline import warehouse
        from pipeline.cli import _settings, console, out

        if kind is not None and kind not in KINDS:
            console.print(f"[red]unknown kind {kind!r}[/red]; choose language or group")
            raise typer.Exit(2)
        settings = _settings()
        when = since.replace(tzinfo=since.tzinfo or UTC) if since else None
        with warehouse.open_warehouse(settings) as con:
            rows = fetch_blindspots(
                con, min_outlets=min_outlets, since=when, kinds=(kind,) if kind else KINDS
            )
        if fmt == "json":
            for r in rows:
                r["first_seen"] = r["first_seen"].isoformat() if r["first_seen"] else None
            out.print_json(json.dumps(rows, ensure_ascii=False))
            return
        table = Table("event", "outlets", "covered by", "silent", "silent outlets")
        for r in rows:
            table.add_row(
                f"{r['label']}\n{r['event_id']}",
                str(r["outlets"]),
                f"{r['kind']}: {', '.join(r['covered_by'])}",
                r["silent"],
                ", ".join(r["silent_outlets"]),
            )
        out.print(table)
        console.print(f"{len(rows)} blindspot(s) in events with ≥ {min_outlets} outlets")
