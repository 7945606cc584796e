"""`parallax init [DIR]` and `parallax where`: make a workspace, and say which one is in use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("where")(where)


def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder for the workspace (default: the current one)")
    ] = Path("."),
) -> None:
    """Make a workspace: parallax.toml, outlets.toml and folders for warehouse, models, runtime."""
    from pipeline.cli import console, out
    from pipeline.workspace import init_workspace

    root = directory.expanduser().resolve()
    made = init_workspace(root)
    for path in made:
        out.print(f"created {path}", soft_wrap=True, highlight=False)
    if not made:
        out.print(f"workspace already complete at {root}", soft_wrap=True, highlight=False)
    console.print(
        "next: `parallax demo` (the bundled sample), then `parallax outlets catalog` and "
        "`parallax outlets add ID ...` to monitor real outlets"
    )


def where() -> None:
    """Print the workspace in use and how it was found, with its main paths."""
    from pipeline.cli import _settings, out
    from pipeline.workspace import find_workspace

    ws = find_workspace()
    settings = _settings()
    for label, value in (
        ("workspace", f"{ws.root} ({ws.how})"),
        ("settings", ws.config_path),
        ("outlets", settings.outlets_path),
        ("warehouse", settings.warehouse),
        ("models", settings.models_dir),
    ):
        out.print(f"{label + ':':<10} {value}", soft_wrap=True, highlight=False)
