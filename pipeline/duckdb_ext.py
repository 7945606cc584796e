"""DuckDB extensions loaded from their PyPI packages (`duckdb-extension-fts`, `-vss`, ...).

Never `INSTALL x FROM` the network: the extension file ships inside the package, built for the
DuckDB version pinned beside it, and is loaded by path. A missing package is a clear error.
"""

from __future__ import annotations

import importlib
import importlib.resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb


class ExtensionUnavailable(RuntimeError):
    """The extension's package is not installed or has no build for this DuckDB version."""


def extension_path(con: duckdb.DuckDBPyConnection, name: str) -> Path:
    """Path of `<name>.duckdb_extension` inside the `duckdb_extension_<name>` package."""
    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError as exc:
        raise ExtensionUnavailable(
            f"DuckDB extension {name!r} needs the package duckdb-extension-{name} "
            f"(pip install duckdb-extension-{name})"
        ) from exc
    version = con.execute("PRAGMA version").fetchall()[0][0]
    path = Path(str(importlib.resources.files(module))) / "extensions" / version
    path = path / f"{name}.duckdb_extension"
    if not path.is_file():
        raise ExtensionUnavailable(
            f"duckdb-extension-{name} has no build for DuckDB {version} ({path} missing); "
            "install the version pinned in pyproject.toml"
        )
    return path


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Load `name` into `con` from its package, once per connection."""
    loaded = con.execute(
        "SELECT loaded FROM duckdb_extensions() WHERE extension_name = ?", [name]
    ).fetchall()
    if loaded and loaded[0][0]:
        return
    con.execute(f"LOAD '{extension_path(con, name)}'")
