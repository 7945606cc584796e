"""`parallax search QUERY` and `parallax eval search --queries FILE`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import duckdb

    from pipeline.align.vectors import Embedder
    from pipeline.search.engine import SearchResult
    from pipeline.settings import Settings


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=value.tzinfo or UTC)


def _embedder(settings: Settings, mode: str) -> Embedder | None:
    if mode == "lexical":
        return None
    from pipeline.align.vectors import embedder_for

    return embedder_for(settings.align)


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Bring the search index up to date (cheap when nothing changed since the last load)."""
    from pipeline.search.lexical import refresh_index

    refresh_index(con)


@contextmanager
def _open(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse with its search index brought up to date; while another process writes
    (a running DAG), read-only with the index as of the last load."""
    from pipeline import warehouse
    from pipeline.cli import console
    from pipeline.search.index_store import search_index

    try:
        with warehouse.open_warehouse(settings) as con, search_index(con, settings):
            prepare(con)
            yield con
            return
    except warehouse.WarehouseLocked:
        console.print("[yellow]warehouse busy: searching the index as of the last load[/]")
    with warehouse.open_warehouse(settings, read_only=True) as con:
        yield con


def _print_table(result: SearchResult) -> None:
    from rich.table import Table

    from pipeline.cli import out

    table = Table("event", "outlet", "lang", "published", "score", "original / English")
    for event_id, hits in result.by_event():
        label = hits[0].event_label or "(no event)"
        for i, hit in enumerate(hits):
            text = hit.original
            text += "\n→ " + (hit.english if hit.english else "(translation pending)")
            for al in hit.aligned[:2]:
                text += f"\n  ≈ {al.outlet} [{al.lang}]: {al.english or al.original}"
            table.add_row(
                f"{label}\n{event_id}" if i == 0 else "",
                hit.outlet,
                hit.lang,
                hit.published_at.strftime("%Y-%m-%d %H:%M") if hit.published_at else "",
                f"{hit.score:.3f}",
                text,
            )
    out.print(table)


def register(app: typer.Typer) -> None:
    from pipeline.cli import eval_app

    @app.command("search")
    def search_cmd(
        query: Annotated[str, typer.Argument(help="Words in Hebrew, Arabic or English")],
        mode: Annotated[str, typer.Option(help="hybrid, lexical or semantic")] = "hybrid",
        lang: Annotated[
            list[str] | None, typer.Option(help="Only documents in this language (repeatable)")
        ] = None,
        since: Annotated[datetime | None, typer.Option(help="Published at or after")] = None,
        until: Annotated[datetime | None, typer.Option(help="Published before")] = None,
        outlet: Annotated[list[str] | None, typer.Option(help="Only this outlet id")] = None,
        limit: Annotated[int, typer.Option(help="Hits to show")] = 20,
        fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    ) -> None:
        """Find coverage in any language: BM25 on originals and English, e5 vectors across
        languages, fused and grouped by event."""
        from pipeline.cli import _settings, console, out
        from pipeline.search.engine import MODES, search
        from pipeline.search.filters import SearchFilters
        from pipeline.search.semantic import SemanticUnavailable

        if mode not in MODES:
            console.print(f"[red]unknown mode {mode!r}[/red]; choose one of {', '.join(MODES)}")
            raise typer.Exit(2)
        if fmt not in ("table", "json"):
            console.print(f"[red]unknown format {fmt!r}[/red]; choose table or json")
            raise typer.Exit(2)
        settings = _settings()
        filters = SearchFilters(
            langs=tuple(lang or ()),
            since=_utc(since),
            until=_utc(until),
            outlets=tuple(outlet or ()),
        )
        embedder = _embedder(settings, mode)
        with _open(settings) as con:
            try:
                result = search(
                    con, query, mode=mode, filters=filters, limit=limit, embedder=embedder
                )
            except (SemanticUnavailable, RuntimeError) as exc:
                console.print(f"[red]{exc}[/red]")
                raise typer.Exit(1) from exc
        for note in result.notes:
            console.print(f"[yellow]{note}[/yellow]")
        if fmt == "json":
            out.print_json(json.dumps([h.to_json() for h in result.hits], ensure_ascii=False))
        else:
            _print_table(result)

    @eval_app.command("search")
    def eval_search_cmd(
        queries: Annotated[Path, typer.Option(help="Query set TOML (see samples/)")] = Path(
            "samples/search_queries.toml"
        ),
        gold: Annotated[Path, typer.Option(help="CSV with url,event")] = Path(
            "samples/gold_events.csv"
        ),
    ) -> None:
        """Recall@10 and MRR per query language → document language, for each mode."""
        from rich.table import Table

        from pipeline import warehouse
        from pipeline.cli import _settings, console, out
        from pipeline.eval.search import QueryFileError, evaluate_search, load_queries
        from pipeline.search.index_store import search_index

        settings = _settings()
        try:
            query_set = load_queries(queries)
        except QueryFileError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        embedder = _embedder(settings, "hybrid")
        with warehouse.open_warehouse(settings) as con, search_index(con, settings):
            prepare(con)
            report = evaluate_search(con, query_set, gold, embedder)
        if report.missing_urls:
            console.print(
                f"[yellow]{report.missing_urls} gold article(s) not in the warehouse[/yellow]"
            )
        table = Table("query → doc", "queries", *(f"{m} R@10 / MRR" for m in report.modes))
        for (ql, dl), row in sorted(report.cells.items()):
            table.add_row(
                f"{ql} → {dl}",
                str(row.queries),
                *(f"{row.recall[m]:.2f} / {row.mrr[m]:.2f}" for m in report.modes),
            )
        out.print(table)
        out.print(report.summary_line(), highlight=False)
