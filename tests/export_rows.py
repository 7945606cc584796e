"""Read statement rows back out of each export format, for the round-trip tests."""

from __future__ import annotations

import csv
import html as html_lib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline.export.formats import write_export
from pipeline.export.statements import ROW_FIELDS, EventStatements


def normalised(rows: Iterable[Mapping[str, object]]) -> list[tuple[str, ...]]:
    return [tuple(str(r[name]) for name in ROW_FIELDS) for r in rows]


def markdown_rows(text: str) -> list[dict[str, str]]:
    """The rows of the Markdown table (cells un-escaped: `\\|`, `\\\\` and HTML entities)."""
    lines = text.splitlines()
    start = lines.index("| " + " | ".join(ROW_FIELDS) + " |") + 2
    rows = []
    for line in lines[start:]:
        cells = re.split(r"(?<!\\) \| ", line[2:-2])
        cells = [re.sub(r"\\(.)", r"\1", c) for c in cells]
        rows.append(dict(zip(ROW_FIELDS, (html_lib.unescape(c) for c in cells), strict=True)))
    return rows


def _find(el: Any, path: str, cls: str) -> list[Any]:
    return list(el.xpath(f".//{path}[contains(concat(' ', @class, ' '), ' {cls} ')]"))


def html_rows(page: str, ev: EventStatements) -> list[tuple[str, ...]]:
    """The sentences of the aligned page as rows: statement row, outlet column, sentence."""
    import lxml.html

    doc = lxml.html.fromstring(page)
    names = {
        th.get("data-outlet"): th.find("bdi").text_content()
        for th in _find(doc, "thead//th", "outlet")
    }
    rows = []
    for tr in _find(doc, "tbody/tr", "st"):
        for td in _find(tr, "td", "cell"):
            outlet_id = td.get("data-outlet")
            for div in _find(td, "div", "sent"):
                lang = div.get("data-lang")
                original = _find(div, "p", "orig")[0].text_content()
                en = _find(div, "p", "en")
                pending = bool(en) and "pending" in en[0].get("class", "")
                if lang == "en":
                    english = original
                elif pending:
                    english = ""
                else:
                    for flag in _find(en[0], "span", "flag"):
                        flag.drop_tree()
                    english = en[0].text_content()
                kinds = sorted({p.get("data-kind") for p in _find(div, "p", "note")})
                rows.append(
                    {
                        "event_id": ev.event_id,
                        "statement": tr.get("data-statement"),
                        "outlet_id": outlet_id,
                        "outlet": names[outlet_id],
                        "lang": lang,
                        "article_id": div.get("data-article"),
                        "seg_no": div.get("data-seg"),
                        "original": original,
                        "english": english,
                        "pending": pending,
                        "unique": "unique" in tr.get("class", "").split(),
                        "divergence_kinds": ",".join(kinds),
                    }
                )
    return normalised(rows)


def check_round_trip(ev: EventStatements, folder: Path) -> None:
    """CSV, Markdown, Parquet and the HTML page carry exactly the model's rows."""
    import pyarrow.parquet as pq

    expected = normalised([r.as_dict() for r in ev.rows()])
    paths = {
        fmt: write_export(ev, fmt, folder / f"{ev.event_id}.{fmt}")
        for fmt in ("csv", "md", "parquet", "html")
    }
    with paths["csv"].open(encoding="utf-8", newline="") as fh:
        assert normalised(list(csv.DictReader(fh))) == expected
    assert normalised(pq.read_table(paths["parquet"]).to_pylist()) == expected
    assert normalised(markdown_rows(paths["md"].read_text(encoding="utf-8"))) == expected
    assert html_rows(paths["html"].read_text(encoding="utf-8"), ev) == expected
