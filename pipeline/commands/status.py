"""Outlet health and quarantine: `parallax status`, and loading saved feed files.

`parallax status` reads the ``outlet_status`` view (warehouse/views.sql), so what the command
shows and what an analyst can query are the same thing. `parallax ingest --feeds DIR` (an
option of the core ingest command) calls :func:`ingest_feed_dirs` here.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from pipeline.records import Article, StageResult
    from pipeline.settings import Settings

STATUS_COLUMNS = (
    "outlet_id",
    "name",
    "last_success_at",
    "last_failure_at",
    "last_failure_reason",
    "retry_after",
    "last_fetch_at",
    "items_seen",
    "articles_stored",
    "rejects",
    "rejects_by_reason",
    "pending_translations",
)


def peak_rss_mib() -> float:
    """This process's peak resident memory, in MiB.

    Linux's ``VmHWM`` belongs to the process's own memory map; ``ru_maxrss`` would not do: it
    survives ``exec``, so a command started from a big process (a test runner) would report
    its parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _parse_files(files: list[Path], settings: Settings) -> tuple[list[Article], StageResult, float]:
    """In the child process: the articles, the stage result and the child's peak memory."""
    from pipeline.run import step_ingest_files

    articles, result = step_ingest_files(files, settings)
    return articles, result, peak_rss_mib()


def outlet_status(settings: Settings) -> list[dict[str, Any]]:
    """One dict per outlet from the ``outlet_status`` view (read-only)."""
    from pipeline import warehouse

    with warehouse.open_warehouse(settings, read_only=True) as con:
        cols = ", ".join(STATUS_COLUMNS)
        rows = con.execute(f"SELECT {cols} FROM outlet_status ORDER BY outlet_id").fetchall()
    return [dict(zip(STATUS_COLUMNS, row, strict=True)) for row in rows]


def ingest_feed_dirs(settings: Settings, paths: list[Path]) -> dict[str, float]:
    """Load saved feed files (directories searched for ``*.xml``) into the warehouse.

    Every file is parsed, quarantined (a reject says why) or counted as crashed; nothing is
    fetched. Returns the figures of the summary line. A crash of the parsing process itself
    (not an exception: those are per file) raises ``BrokenProcessPool``.
    """
    from pipeline import warehouse
    from pipeline.ingest.stage import feed_files
    from pipeline.records import Outlet
    from pipeline.run import step_load_articles, step_segment

    files = feed_files(paths)
    # Parsing and language detection run in a child process: the parser's and detector's
    # memory is returned when it ends instead of adding to the warehouse load's, and a parser
    # that brings the interpreter down cannot take the command with it.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        articles, result, child_peak = pool.submit(_parse_files, files, settings).result()
    outlets = {
        f.stem: Outlet(outlet_id=f.stem, name=f.stem, lang="", feed_url=f.resolve().as_uri())
        for f in files
    }
    with warehouse.open_warehouse(settings) as con:
        loaded = step_load_articles(con, list(outlets.values()), articles, result)
        step_segment(con, settings)
    counts = result.counts
    return {
        "files": counts.get("files", 0),
        "parsed": counts.get("files_parsed", 0),
        "quarantined": counts.get("files_quarantined", 0),
        "crashed": counts.get("files_crashed", 0),
        "articles": loaded.counts.get("new", 0) + loaded.counts.get("edited", 0),
        "rejects": len(result.rejects),
        "peak_rss_mib_parsing": child_peak,
        "peak_rss_mib_loading": peak_rss_mib(),
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}Z"
    return str(value)


def register(app: typer.Typer) -> None:
    @app.command()
    def status(
        as_json: Annotated[
            bool, typer.Option("--json", help="One JSON object per outlet instead of a table")
        ] = False,
    ) -> None:
        """Per outlet: last success, last failure and why, items, articles, rejects, pending."""
        from rich.table import Table

        from pipeline.cli import _settings, console, out

        settings = _settings()
        if settings.warehouse != ":memory:" and not Path(settings.warehouse).exists():
            console.print(f"[red]no warehouse at {settings.warehouse}[/red]: run `parallax run`")
            raise typer.Exit(1)
        rows = outlet_status(settings)
        if as_json:
            for row in rows:
                out.print_json(json.dumps(row, default=str, ensure_ascii=False), indent=None)
            return
        table = Table(title="Outlets")
        for name in ("outlet", "last success", "last failure", "items", "articles", "rejects"):
            table.add_column(name, overflow="fold")
        table.add_column("pending", overflow="fold")
        for row in rows:
            failure = _cell(row["last_failure_at"])
            if row["last_failure_reason"]:
                failure += f"\n{row['last_failure_reason']}"
            if row["retry_after"]:
                failure += f"\nretry after {_cell(row['retry_after'])}"
            table.add_row(
                _cell(row["outlet_id"]),
                _cell(row["last_success_at"]),
                failure,
                _cell(row["items_seen"]),
                _cell(row["articles_stored"]),
                (row["rejects_by_reason"] or "-").replace(", ", "\n"),
                _cell(row["pending_translations"]),
            )
        out.print(table)
