"""An event's coverage side by side: one column per outlet, each sentence beside its English.

Read from the warehouse's `parallel_text` view, so an export shows exactly what SQL shows.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.records import RTL_LANGS

if TYPE_CHECKING:
    import duckdb

FORMATS = ("html", "csv", "md", "parquet")


class UnknownEvent(LookupError):
    pass


@dataclass(frozen=True)
class SentencePair:
    seg_no: int
    para_no: int
    original: str
    english: str | None  # None while the translation is pending
    flagged: str


@dataclass(frozen=True)
class ArticleView:
    article_id: str
    title: str
    url: str
    lang: str
    published_at: datetime | None
    similarity: float
    sentences: tuple[SentencePair, ...]

    @property
    def rtl(self) -> bool:
        return self.lang in RTL_LANGS


@dataclass(frozen=True)
class OutletColumn:
    outlet_id: str
    outlet: str
    lang: str
    articles: tuple[ArticleView, ...]


@dataclass(frozen=True)
class EventView:
    event_id: str
    label: str
    first_seen: datetime | None
    last_seen: datetime | None
    langs: tuple[str, ...]
    columns: tuple[OutletColumn, ...]


def load_event(con: duckdb.DuckDBPyConnection, event_id: str) -> EventView:
    head = con.execute(
        "SELECT event_id, label, first_seen, last_seen, langs FROM events WHERE event_id = ?",
        [event_id],
    ).fetchall()
    if not head:
        raise UnknownEvent(
            f'no event {event_id!r}; list events with: parallax sql "select * from events"'
        )
    _, label, first_seen, last_seen, langs = head[0]
    members = con.execute(
        """
        SELECT a.article_id, a.outlet_id, coalesce(o.name, a.outlet_id), a.lang, a.title, a.url,
               a.published_at, ea.similarity
        FROM event_articles ea JOIN articles a USING (article_id)
        LEFT JOIN outlets o ON o.outlet_id = a.outlet_id
        WHERE ea.event_id = ?
        ORDER BY a.lang, a.outlet_id, a.published_at NULLS LAST, a.article_id
        """,
        [event_id],
    ).fetchall()
    sentences: dict[str, list[SentencePair]] = {}
    for row in con.execute(
        """
        SELECT article_id, seg_no, para_no, original, english, coalesce(flagged, '')
        FROM parallel_text
        WHERE article_id IN (SELECT article_id FROM event_articles WHERE event_id = ?)
        ORDER BY article_id, seg_no
        """,
        [event_id],
    ).fetchall():
        sentences.setdefault(row[0], []).append(SentencePair(*row[1:]))
    columns: dict[str, tuple[str, str, list[ArticleView]]] = {}
    for aid, outlet_id, outlet, lang, title, url, published, sim in members:
        view = ArticleView(
            aid, title or "", url, lang or "", published, float(sim), tuple(sentences.get(aid, ()))
        )
        columns.setdefault(outlet_id, (outlet, lang or "", []))[2].append(view)
    return EventView(
        event_id=event_id,
        label=label or event_id,
        first_seen=first_seen,
        last_seen=last_seen,
        langs=tuple(langs or ()),
        columns=tuple(
            OutletColumn(oid, name, lang, tuple(arts))
            for oid, (name, lang, arts) in columns.items()
        ),
    )


def render_html(view: EventView) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.export", "templates"),
        autoescape=True,  # article text is hostile input
    )
    return env.get_template("event.html.j2").render(view=view)


def to_rows(view: EventView) -> list[dict[str, Any]]:
    """One row per sentence: the long format that CSV and Parquet users sort and filter."""
    rows = []
    for col in view.columns:
        for art in col.articles:
            for s in art.sentences:
                rows.append(
                    {
                        "event_id": view.event_id,
                        "outlet_id": col.outlet_id,
                        "outlet": col.outlet,
                        "lang": art.lang,
                        "article_id": art.article_id,
                        "title": art.title,
                        "url": art.url,
                        "published_at": art.published_at.isoformat() if art.published_at else "",
                        "seg_no": s.seg_no,
                        "original": s.original,
                        "english": s.english if s.english is not None else "",
                        "pending": s.english is None,
                    }
                )
    return rows


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(view: EventView) -> str:
    """A table with one column per outlet; each cell holds a sentence and its English."""
    lines = [
        f"# {view.label}",
        "",
        f"Event `{view.event_id}` · languages: {', '.join(view.langs)}",
        "",
    ]
    cols = [[(a, s) for a in col.articles for s in a.sentences] for col in view.columns]
    lines.append("| " + " | ".join(_md_cell(f"{c.outlet} ({c.lang})") for c in view.columns) + " |")
    lines.append("|" + "---|" * len(view.columns))
    depth = max((len(c) for c in cols), default=0)
    for i in range(depth):
        cells = []
        for col in cols:
            if i < len(col):
                _, s = col[i]
                english = s.english if s.english is not None else "_(translation pending)_"
                cells.append(_md_cell(f"{s.original}<br>*{english}*"))
            else:
                cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_export(view: EventView, fmt: str, out: Path) -> Path:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "html":
        out.write_text(render_html(view), encoding="utf-8")
    elif fmt == "md":
        out.write_text(render_markdown(view), encoding="utf-8")
    elif fmt == "csv":
        rows = to_rows(view)
        with out.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["event_id"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(to_rows(view)), out)
    return out
