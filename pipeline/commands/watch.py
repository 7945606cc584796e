"""`parallax watch add|list|remove|test`: watchlists stored in the warehouse."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

watch_app = typer.Typer(no_args_is_help=True, help="Watchlists: be told when a query appears.")


@watch_app.command("add")
def watch_add(
    name: Annotated[str, typer.Argument(help="Unique name")],
    query: Annotated[str, typer.Argument(help="Words in Hebrew, Arabic or English")],
    lang: Annotated[list[str] | None, typer.Option(help="Only articles in this language")] = None,
    min_outlets: Annotated[
        int, typer.Option(help="Alert once the event's matching coverage spans N outlets")
    ] = 1,
    notify: Annotated[
        list[str] | None,
        typer.Option(help="webhook:URL, email:ADDRESS or file:PATH (repeatable)"),
    ] = None,
    mode: Annotated[str, typer.Option(help="hybrid, lexical or semantic")] = "hybrid",
    min_score: Annotated[
        float | None, typer.Option(help="Semantic cosine floor (default: [watch] setting)")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(help="Alert on coverage first seen since then (default: from now on)"),
    ] = None,
) -> None:
    """Save a watch; every later load alerts once per new matching article."""
    from pipeline import warehouse
    from pipeline.cli import _settings, console, out
    from pipeline.watch.store import Watch, WatchError, add_watch

    settings = _settings()
    watch = Watch(
        name,
        query,
        mode,
        tuple(lang or ()),
        min_outlets,
        min_score,
        tuple(notify or ()),
        since.replace(tzinfo=since.tzinfo or UTC) if since else None,
    )
    with warehouse.open_warehouse(settings) as con:
        try:
            stored = add_watch(con, watch)
        except WatchError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    if not stored.notify:
        console.print("[yellow]no --notify target: alerts are only recorded in the warehouse[/]")
    out.print(f"watch {stored.name} added (alerts on coverage since {stored.created_at})")


@watch_app.command("list")
def watch_list() -> None:
    """Watches with their alert and delivery counts."""
    from rich.table import Table

    from pipeline import warehouse
    from pipeline.cli import _settings, out

    settings = _settings()
    with warehouse.open_warehouse(settings) as con:
        rows = con.execute(
            """
            SELECT w.name, w.query, w.mode, coalesce(array_to_string(w.langs, ','), 'all'),
                   w.min_outlets, array_to_string(w.notify, ' '),
                   (SELECT count(*) FROM alerts a WHERE a.watch = w.name),
                   (SELECT count(*) FROM alert_deliveries d
                    WHERE d.watch = w.name AND d.status = 'pending')
            FROM watches w ORDER BY w.name
            """
        ).fetchall()
    table = Table("name", "query", "mode", "langs", "min outlets", "notify", "alerts", "pending")
    for r in rows:
        table.add_row(*(str(v) for v in r))
    out.print(table)


@watch_app.command("remove")
def watch_remove(name: Annotated[str, typer.Argument(help="Watch name")]) -> None:
    """Delete a watch, its alert ledger and its pending deliveries."""
    from pipeline import warehouse
    from pipeline.cli import _settings, console, out
    from pipeline.watch.store import WatchError, remove_watch

    with warehouse.open_warehouse(_settings()) as con:
        try:
            remove_watch(con, name)
        except WatchError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
    out.print(f"watch {name} removed")


@watch_app.command("test")
def watch_test(name: Annotated[str, typer.Argument(help="Watch name")]) -> None:
    """Show what the watch matches in the warehouse now; records and sends nothing."""
    from rich.table import Table

    from pipeline import warehouse
    from pipeline.align.vectors import embedder_for
    from pipeline.cli import _settings, console, out
    from pipeline.search.index_store import search_index
    from pipeline.search.lexical import refresh_index
    from pipeline.watch.matcher import find_matches
    from pipeline.watch.store import get_watch

    settings = _settings()
    with warehouse.open_warehouse(settings) as con, search_index(con, settings):
        watch = get_watch(con, name)
        if watch is None:
            console.print(f"[red]no watch named {name!r}[/red]")
            raise typer.Exit(1)
        refresh_index(con)
        embedder = embedder_for(settings.align) if watch.mode != "lexical" else None
        matches = find_matches(
            con, watch, embedder, semantic_floor=settings.watch.semantic_min_score
        )
        rows = con.execute(
            """
            SELECT a.article_id, coalesce(e.label, a.title), a.outlet_id, a.lang,
                   EXISTS (SELECT 1 FROM alerts x WHERE x.watch = ? AND x.article_id = a.article_id)
            FROM articles a LEFT JOIN event_articles ea USING (article_id)
            LEFT JOIN events e USING (event_id)
            WHERE a.article_id IN (SELECT unnest(?))
            ORDER BY e.label, a.outlet_id
            """,
            [name, list(matches)],
        ).fetchall()
    table = Table("event", "outlet", "lang", "matched by", "alerted")
    for aid, label, outlet, lang, alerted in rows:
        table.add_row(label or "", outlet, lang or "", matches[aid].how, "yes" if alerted else "no")
    out.print(table)
    console.print(f"{len(rows)} article(s) match {name!r}")


def register(app: typer.Typer) -> None:
    app.add_typer(watch_app, name="watch")
