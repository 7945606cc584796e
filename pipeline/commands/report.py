"""`parallax report`: write the static report site (index of events + one page per event)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Site folder (default: <runtime dir>/report)")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only events last seen at or after this date")
    ] = None,
    lang: Annotated[
        list[str] | None, typer.Option("--lang", help="Only events covering this language")
    ] = None,
) -> None:
    """Write the report site; prints each file it wrote, then a summary line."""
    from pipeline import warehouse
    from pipeline.cli import _settings, console, out
    from pipeline.report import build_site, report_dir

    settings = _settings()
    if settings.warehouse != ":memory:" and not Path(settings.warehouse).exists():
        console.print(
            f"[red]no warehouse at {settings.warehouse}[/red]: run `parallax demo` or `parallax run`"
        )
        raise typer.Exit(1)
    target = out_dir or report_dir(settings)
    when = since.replace(tzinfo=since.tzinfo or UTC) if since else None
    with warehouse.open_warehouse(settings, read_only=True) as con:
        result = build_site(con, target, since=when, langs=lang)
    for path in result.written:
        console.print(f"wrote   {path}")
    for path in result.removed:
        console.print(f"removed {path}")
    out.print(
        f"events={result.events} written={len(result.written)} unchanged={result.unchanged} "
        f"removed={len(result.removed)} seconds={result.seconds:.2f} index={result.index}",
        soft_wrap=True,
        highlight=False,
    )
