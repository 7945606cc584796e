"""The curated outlet catalogue (`pipeline/catalog/outlets.toml`) and writing outlets.toml files.

The catalogue ships with the package; `parallax outlets add` copies its entries (or an outlet
discovered from a homepage) into a workspace's `outlets.toml`, appending TOML text so the
user's comments and order stay as they were.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.records import Outlet

GROUPS = ("israeli", "palestinian", "egyptian", "gulf", "levant", "international")


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    lang: str
    country: str
    group: str
    homepage: str
    feed_url: str
    evidence: tuple[str, ...] = field(default=())
    seen: str = ""

    def to_outlet(self) -> Outlet:
        return Outlet(
            outlet_id=self.id,
            name=self.name,
            lang=self.lang,
            feed_url=self.feed_url,
            homepage=self.homepage,
            country=self.country,
            group=self.group,
        )

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["evidence"] = list(self.evidence)
        return data


def load_catalog(path: Path | None = None) -> list[CatalogEntry]:
    """Every catalogue entry, in file order."""
    from pipeline.workspace import catalog_path

    path = path or catalog_path()
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    entries = []
    for table in data.get("outlet", []):
        table = dict(table)
        table["evidence"] = tuple(table.get("evidence", ()))
        entries.append(CatalogEntry(**table))
    return entries


def _toml_str(value: str) -> str:
    # JSON string syntax is valid TOML basic-string syntax (\", \\, \n, \uXXXX).
    return json.dumps(value, ensure_ascii=False)


def outlet_toml(outlet: Outlet, comment: str = "") -> str:
    """One ``[[outlet]]`` table as TOML text."""
    lines = ["", *(f"# {c}" for c in comment.splitlines() if c), "[[outlet]]"]
    lines.append(f"id = {_toml_str(outlet.outlet_id)}")
    lines.append(f"name = {_toml_str(outlet.name)}")
    lines.append(f"lang = {_toml_str(outlet.lang)}")
    lines.append(f"feed_url = {_toml_str(outlet.feed_url)}")
    for key, value in (
        ("homepage", outlet.homepage),
        ("country", outlet.country),
        ("group", outlet.group),
    ):
        if value:
            lines.append(f"{key} = {_toml_str(value)}")
    if not outlet.fetch_pages:
        lines.append("fetch_pages = false")
    if outlet.allow_private:
        lines.append("allow_private = true  # on this machine or a private network")
    return "\n".join(lines) + "\n"


def configured_ids(path: Path) -> set[str]:
    """Ids already in an outlets file (empty when the file does not exist)."""
    if not path.is_file():
        return set()
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", "correct that line") from exc
    return {str(t.get("id", "")) for t in data.get("outlet", []) if isinstance(t, dict)}


def append_outlets(path: Path, outlets: list[tuple[Outlet, str]]) -> list[str]:
    """Append outlets (with a comment each) to ``path``; ids already there are skipped.
    Returns the ids written. The file is checked to still parse afterwards."""
    present = configured_ids(path)
    new = [(o, c) for o, c in outlets if o.outlet_id not in present]
    if not new:
        return []
    path.parent.mkdir(parents=True, exist_ok=True)
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    text = before + ("" if not before or before.endswith("\n") else "\n")
    text += "".join(outlet_toml(o, c) for o, c in new)
    tomllib.loads(text)  # never leave a file behind that the next run cannot read
    path.write_text(text, encoding="utf-8")
    return [o.outlet_id for o, _ in new]
