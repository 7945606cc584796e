"""Command groups kept in modules of their own, so `pipeline/cli.py` stays the core commands.

Each module here defines ``register(app)``, which adds its commands (or a sub-app) to the
``parallax`` Typer app; :func:`register_all` imports them in name order.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer


def register_all(app: typer.Typer) -> None:
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{mod.name}").register(app)
