"""`parallax outlets catalog|add|check`: from the curated catalogue (or any homepage) to
monitored outlets, and a once-over of every configured feed."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated

import typer

outlets_app = typer.Typer(
    no_args_is_help=True, help="Outlets: the real-outlet catalogue, adding outlets, checking feeds."
)


def register(app: typer.Typer) -> None:
    app.add_typer(outlets_app, name="outlets")


@outlets_app.command("catalog")
def catalog(
    lang: Annotated[str | None, typer.Option(help="Only this language: he, ar or en")] = None,
    group: Annotated[str | None, typer.Option(help="Only this group, e.g. palestinian")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """List the curated catalogue of real outlets and their feeds."""
    from rich.table import Table

    from pipeline.catalog import load_catalog
    from pipeline.cli import out
    from pipeline.errors import ParallaxError

    if fmt not in ("table", "json"):
        raise ParallaxError(f"unknown format {fmt!r}", "use --format table or --format json")
    entries = [
        e
        for e in load_catalog()
        if (not lang or e.lang == lang) and (not group or e.group == group)
    ]
    if fmt == "json":
        out.print_json(json.dumps([e.as_json() for e in entries], ensure_ascii=False))
        return
    table = Table("id", "name", "lang", "country", "group", "feed_url")
    for e in entries:
        table.add_row(e.id, e.name, e.lang, e.country, e.group, e.feed_url)
    out.print(table)
    out.print(f"{len(entries)} outlet(s); add some with `parallax outlets add ID ...`")


@outlets_app.command("add")
def add(
    targets: Annotated[list[str], typer.Argument(help="Catalogue ids, or homepage URLs")],
    outlet_id: Annotated[
        str | None, typer.Option("--id", help="Id for an outlet found from a URL")
    ] = None,
    group: Annotated[str, typer.Option(help="Group label for an outlet found from a URL")] = "",
    allow_private: Annotated[
        bool,
        typer.Option(
            help="The homepage is on this machine or a private network (never for a public outlet)"
        ),
    ] = False,
) -> None:
    """Copy catalogue entries, or outlets discovered from homepages, into outlets.toml."""
    from pipeline.catalog import append_outlets, load_catalog
    from pipeline.catalog.discover import discover
    from pipeline.cli import _settings, console, out
    from pipeline.errors import ParallaxError
    from pipeline.records import Outlet

    settings = _settings()
    by_id = {e.id: e for e in load_catalog()}
    chosen: list[tuple[Outlet, str]] = []
    for target in targets:
        if target.startswith(("http://", "https://")):
            console.print(f"looking for the feed of {target}")
            found = discover(
                target, settings.ingest, outlet_id=outlet_id or "", allow_private=allow_private
            )
            o = found.outlet
            if group:
                o = replace(o, group=group)
            note = (
                f"found from {target} ({found.how}); {found.items} items, "
                f"language detected {o.lang} ({found.lang_confidence:.2f})"
            )
            chosen.append((o, note))
            console.print(f"  {o.feed_url}: {note}")
        elif target in by_id:
            e = by_id[target]
            chosen.append((e.to_outlet(), f"from the Parallax catalogue (feed seen {e.seen})"))
        else:
            raise ParallaxError(
                f"{target!r} is neither a catalogue id nor an http(s) URL",
                "see the ids with `parallax outlets catalog`, or give the outlet's homepage URL",
            )
    written = append_outlets(settings.outlets_path, chosen)
    skipped = [o.outlet_id for o, _ in chosen if o.outlet_id not in written]
    for oid in written:
        out.print(f"added {oid}")
    for oid in skipped:
        out.print(f"already there: {oid}")
    console.print(f"outlets file: {settings.outlets_path}; next: `parallax outlets check`")


@outlets_app.command("check")
def check(
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Fetch each configured feed once: status, items, newest item's age, language, what to fix."""
    from dataclasses import asdict

    from rich.table import Table

    from pipeline.catalog.discover import check_outlet
    from pipeline.cli import _outlets, _settings, out
    from pipeline.ingest.http import make_client

    settings = _settings()
    outlets = _outlets(settings, None)
    clients = {
        private: make_client(settings.ingest, allow_private=private)
        for private in {o.allow_private for o in outlets}
    }
    try:
        checks = [check_outlet(clients[o.allow_private], o, settings.ingest) for o in outlets]
    finally:
        for client in clients.values():
            client.close()
    if fmt == "json":
        out.print_json(json.dumps([asdict(c) for c in checks], ensure_ascii=False))
    else:
        table = Table("outlet", "status", "items", "newest", "lang (declared/detected)", "fix")
        for c in checks:
            age = "-" if c.newest_age_h is None else f"{c.newest_age_h:.0f} h"
            langs = f"{c.declared_lang}/{c.detected_lang or '-'}"
            colour = "green" if c.ok else "red" if c.status != "200" else "yellow"
            status = f"[{colour}]{c.status}[/{colour}]"
            table.add_row(c.outlet_id, status, str(c.items), age, langs, c.fix or "ok")
        out.print(table)
    bad = [c for c in checks if c.status != "200"]
    if bad:
        raise typer.Exit(1)
