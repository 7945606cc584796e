"""`parallax blindspots`: events one side covered and another stayed silent on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from pipeline.blindspots import KINDS, fetch_blindspots

__all__ = ["KINDS", "fetch_blindspots", "register"]


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
