"""Where user state lives (the workspace) and where read-only resources come from.

An installed Parallax carries code and read-only resources (schema, views, the bundled sample,
the default model registry, the outlet catalogue); everything a user writes (settings, outlets,
warehouse, models, runtime files) lives in a *workspace*, found in this order:

1. ``PARALLAX_HOME``;
2. the current directory or its nearest parent holding ``parallax.toml`` (made by
   ``parallax init``) or a Parallax git checkout (``pyproject.toml`` naming ``parallax-news``);
3. the checkout the code itself runs from (``pip install -e`` or ``PYTHONPATH``), so a checkout
   keeps working from any directory as before;
4. the per-user data directory (``platformdirs``), made on first use.

Two layouts: a checkout keeps ``config/parallax.toml``, ``config/outlets.toml``,
``warehouse/parallax.duckdb`` and ``models/store/``; a workspace made by ``parallax init`` is flat:
``parallax.toml``, ``outlets.toml``, ``warehouse/``, ``models/``, ``var/``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

WORKSPACE_FILE = "parallax.toml"
HOME_ENV = "PARALLAX_HOME"
PACKAGE_NAME = "parallax-news"
# The code's own folder's parent: the checkout root when the code runs from a checkout.
CODE_ROOT = Path(__file__).resolve().parent.parent

# Read-only resources: the checkout folder that is their source of truth, and the name they
# have inside the installed package (setup.py maps one onto the other).
RESOURCES = {"schema": "warehouse", "sample": "samples", "registry": "models"}


def is_checkout(path: Path) -> bool:
    """A Parallax git checkout: its pyproject names the package and the schema folder is there."""
    pyproject = path / "pyproject.toml"
    if not pyproject.is_file() or not (path / "warehouse").is_dir():
        return False
    try:
        with pyproject.open("rb") as fh:
            return tomllib.load(fh).get("project", {}).get("name") == PACKAGE_NAME
    except (OSError, tomllib.TOMLDecodeError):
        return False


@dataclass(frozen=True)
class Workspace:
    root: Path
    how: str  # "PARALLAX_HOME", "current directory", "checkout" or "user data directory"
    checkout: bool  # checkout layout (config/, models/store/) rather than the flat one

    @property
    def config_path(self) -> Path:
        return self.root / ("config" if self.checkout else "") / WORKSPACE_FILE

    @property
    def outlets_path(self) -> Path:
        return self.root / ("config" if self.checkout else "") / "outlets.toml"

    @property
    def warehouse_path(self) -> Path:
        return self.root / "warehouse" / "parallax.duckdb"

    @property
    def models_dir(self) -> Path:
        return self.root / "models" / ("store" if self.checkout else "")

    @property
    def runtime_dir(self) -> Path:
        return self.root / "var"


def _at(root: Path, how: str) -> Workspace:
    return Workspace(root, how, checkout=is_checkout(root))


def user_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("parallax", appauthor=False))


def find_workspace(cwd: Path | None = None) -> Workspace:
    """The workspace commands use (see the module docstring for the order)."""
    home = os.environ.get(HOME_ENV, "").strip()
    if home:
        return _at(Path(home).expanduser().resolve(), HOME_ENV)
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / WORKSPACE_FILE).is_file() or is_checkout(folder):
            return _at(folder, "current directory")
    code_root = Path(os.environ.get("PARALLAX_ROOT", CODE_ROOT))
    if is_checkout(code_root):
        return Workspace(code_root, "checkout", checkout=True)
    return Workspace(user_data_dir(), "user data directory", checkout=False)


def resource_dir(name: str) -> Path:
    """A read-only resource folder: the checkout's own folder when running from a checkout,
    else the copy inside the installed package."""
    code_root = Path(os.environ.get("PARALLAX_ROOT", CODE_ROOT))
    if is_checkout(code_root):
        return code_root / RESOURCES[name]
    packaged = Path(str(resources.files("pipeline") / name))
    if not packaged.is_dir():
        from pipeline.errors import ParallaxError

        raise ParallaxError(
            f"this installation lacks its {name} resources ({packaged} is missing)",
            "reinstall parallax-news, or run from a git checkout",
        )
    return packaged


def catalog_path() -> Path:
    """The curated outlet catalogue shipped with the package."""
    return Path(str(resources.files("pipeline") / "catalog" / "outlets.toml"))


OUTLETS_HEADER = """\
# Outlets Parallax monitors from this workspace. Add real ones from the catalogue:
#   parallax outlets catalog --lang he          # browse
#   parallax outlets add ynet times-of-israel aljazeera-ar
#   parallax outlets add https://example.org/    # any homepage: its feed is discovered
#   parallax outlets check                       # fetch each feed once, say what to fix
#
# [[outlet]]
# id = "my-outlet"          # stable id used in the warehouse
# name = "My Outlet"
# lang = "he"                # language the outlet publishes in: he, ar, en, ...
# feed_url = "https://example.org/rss.xml"
# homepage = "https://example.org/"
# country = "IL"
# group = "israeli"          # side of coverage: israeli, palestinian, egyptian, gulf, levant, ...
"""

CONFIG_TEMPLATE = """\
# Parallax workspace settings. Every key is optional; the defaults are in pipeline/settings.py
# and environment variables (PARALLAX_WAREHOUSE, PARALLAX_MODELS_DIR, ...) override this file.
# Relative paths are relative to this folder.
#
# warehouse = "warehouse/parallax.duckdb"
# models_dir = "models"
#
# [translate]
# tier = "default"          # "quality": the larger opus-mt-tc-big models (registry tier)
#
# [ingest]
# per_host_delay_s = 1.0
"""


def init_workspace(root: Path) -> list[Path]:
    """Make a flat workspace in ``root``; existing files are kept. Returns what was created."""
    made: list[Path] = []
    root.mkdir(parents=True, exist_ok=True)
    for name, text in ((WORKSPACE_FILE, CONFIG_TEMPLATE), ("outlets.toml", OUTLETS_HEADER)):
        path = root / name
        if not path.exists():
            path.write_text(text, encoding="utf-8")
            made.append(path)
    for sub in ("warehouse", "models", "var"):
        path = root / sub
        if not path.is_dir():
            path.mkdir(parents=True)
            made.append(path)
    return made
