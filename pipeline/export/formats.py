"""Every export format renders the same statement rows (`pipeline.export.statements`).

HTML is the aligned page an analyst reads (statements x outlets); CSV, Parquet and Markdown are
the long format, one sentence per line with the fields of ROW_FIELDS, so a count or a text
never differs between them. Markdown escapes `<`, `>`, `&` as entities and `|` as `\\|`, so
hostile text stays text in any Markdown viewer.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.export.statements import ROW_FIELDS, EventStatements

if TYPE_CHECKING:
    import jinja2

FORMATS = ("html", "csv", "md", "parquet")


@lru_cache(maxsize=1)
def jinja_env() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.export", "templates"),
        autoescape=True,  # every byte of article text, titles and names is hostile input
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["when"] = when
    env.filters["day"] = lambda ts: ts.strftime("%Y-%m-%d") if ts else ""
    return env


def when(ts: datetime | None) -> str:
    """A timestamp as shown on pages (already UTC in the model)."""
    return ts.strftime("%Y-%m-%d %H:%M UTC") if ts else "undated"


@dataclass(frozen=True)
class Lane:
    name: str
    lang: str
    y: int
    xs: tuple[float, ...]


@dataclass(frozen=True)
class Timeline:
    """Coverage timeline of an event: one lane per outlet, one mark per article."""

    width: int
    height: int
    left: int
    lanes: tuple[Lane, ...]
    start: str
    end: str


LANE_H = 16
TIMELINE_W = 560
LABEL_W = 150


def timeline(ev: EventStatements) -> Timeline:
    times = [a.published_at for a in ev.articles if a.published_at]
    t0, t1 = (min(times), max(times)) if times else (None, None)
    span = (t1 - t0).total_seconds() if t0 and t1 else 0.0
    plot = TIMELINE_W - LABEL_W - 10
    lanes = []
    for i, o in enumerate(ev.outlets):
        xs = []
        for a in ev.articles:
            if a.outlet_id != o.outlet_id or a.published_at is None or t0 is None:
                continue
            frac = (a.published_at - t0).total_seconds() / span if span else 0.5
            xs.append(round(LABEL_W + frac * plot, 1))
        lanes.append(Lane(o.name, o.lang, 14 + i * LANE_H, tuple(xs)))
    return Timeline(TIMELINE_W, 22 + len(lanes) * LANE_H, LABEL_W, tuple(lanes), when(t0), when(t1))


def render_html(ev: EventStatements, *, back_href: str | None = None) -> str:
    """The aligned event page (statements x outlets), self-contained."""
    return (
        jinja_env()
        .get_template("event.html.j2")
        .render(ev=ev, back_href=back_href, tl=timeline(ev), wide=len(ev.outlets) > 3)
    )


def _md(value: object) -> str:
    text = str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def render_markdown(ev: EventStatements) -> str:
    lines = [
        f"# {_md(ev.label)}",
        "",
        f"Event `{ev.event_id}` · languages: {', '.join(ev.langs)} · outlets: "
        + ", ".join(f"{_md(o.name)} ({o.lang})" for o in ev.outlets),
        "",
    ]
    if ev.differ:
        lines += ["## Where outlets differ", ""]
        for e in ev.differ:
            parts = [
                f"{_md(v.value)} — " + ", ".join(f"{_md(o.name)} ({o.lang})" for o in v.outlets)
                for v in e.values
            ]
            lines.append(f"- {e.label}: " + " · ".join(parts))
        lines.append("")
    lines += ["| " + " | ".join(ROW_FIELDS) + " |", "|" + "---|" * len(ROW_FIELDS)]
    for row in ev.rows():
        lines.append("| " + " | ".join(_md(v) for v in row.as_dict().values()) + " |")
    return "\n".join(lines) + "\n"


def render_csv(ev: EventStatements) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(ROW_FIELDS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(r.as_dict() for r in ev.rows())
    return buf.getvalue()


def parquet_bytes(ev: EventStatements) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            (name, pa.int64() if name in ("statement", "seg_no") else pa.bool_())
            if name in ("statement", "seg_no", "pending", "unique")
            else (name, pa.string())
            for name in ROW_FIELDS
        ]
    )
    rows = [r.as_dict() for r in ev.rows()]
    table = pa.Table.from_pylist(rows, schema=schema)
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    return bytes(buf.getvalue().to_pybytes())


def render_bytes(ev: EventStatements, fmt: str, *, back_href: str | None = None) -> bytes:
    if fmt == "html":
        return render_html(ev, back_href=back_href).encode("utf-8")
    if fmt == "md":
        return render_markdown(ev).encode("utf-8")
    if fmt == "csv":
        return render_csv(ev).encode("utf-8")
    if fmt == "parquet":
        return parquet_bytes(ev)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def write_export(ev: EventStatements, fmt: str, out: Path) -> Path:
    data = render_bytes(ev, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out
