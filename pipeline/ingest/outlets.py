"""Read the outlet list (`config/outlets.toml`) into typed :class:`Outlet` records.

A typo in the outlet file should stop the run before any fetching, with a message that names the
file and the outlet, so every problem raises ``ValueError`` here.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.records import Outlet

logger = logging.getLogger(__name__)

_REQUIRED = ("id", "name", "lang", "feed_url")
_OPTIONAL = ("homepage", "country", "fetch_pages", "group", "allow_private")


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _outlet_from_table(table: dict[str, Any], index: int, path: Path) -> Outlet:
    label = f"{path}: outlet #{index + 1}" + (f" ({table['id']!r})" if "id" in table else "")
    missing = [key for key in _REQUIRED if key not in table]
    if missing:
        raise ValueError(f"{label}: missing key(s) {', '.join(missing)}")
    unknown = sorted(set(table) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        logger.warning("%s: ignoring unknown key(s) %s", label, ", ".join(unknown))
    for key in ("id", "name", "lang", "feed_url", "homepage", "country", "group"):
        if key in table and not isinstance(table[key], str):
            raise ValueError(f"{label}: {key} must be a string, got {table[key]!r}")
    if not table["id"].strip():
        raise ValueError(f"{label}: id is empty")
    if not _is_http_url(table["feed_url"]):
        raise ValueError(f"{label}: feed_url must be an http(s) URL, got {table['feed_url']!r}")
    homepage = table.get("homepage", "")
    if homepage and not _is_http_url(homepage):
        raise ValueError(f"{label}: homepage must be an http(s) URL, got {homepage!r}")
    fetch_pages = table.get("fetch_pages", True)
    if not isinstance(fetch_pages, bool):
        raise ValueError(f"{label}: fetch_pages must be true or false, got {fetch_pages!r}")
    allow_private = table.get("allow_private", False)
    if not isinstance(allow_private, bool):
        raise ValueError(f"{label}: allow_private must be true or false, got {allow_private!r}")
    return Outlet(
        outlet_id=table["id"].strip(),
        name=table["name"],
        lang=table["lang"].strip().lower(),
        feed_url=table["feed_url"].strip(),
        homepage=homepage,
        country=table.get("country", ""),
        fetch_pages=fetch_pages,
        group=table.get("group", "").strip().lower(),
        allow_private=allow_private,
    )


def load_outlets(path: Path) -> list[Outlet]:
    """Outlets from the ``[[outlet]]`` tables of a TOML file, in file order."""
    try:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    tables = data.get("outlet", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ValueError(f"{path}: 'outlet' must be an array of tables ([[outlet]])")
    outlets: list[Outlet] = []
    seen: set[str] = set()
    for index, table in enumerate(tables):
        outlet = _outlet_from_table(table, index, path)
        if outlet.outlet_id in seen:
            raise ValueError(f"{path}: outlet #{index + 1}: duplicate id {outlet.outlet_id!r}")
        seen.add(outlet.outlet_id)
        outlets.append(outlet)
    return outlets
