"""Side-by-side export of an event in every format, from a warehouse filled through the loaders."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline import warehouse
from pipeline.export.side_by_side import UnknownEvent, load_event, render_html, write_export
from pipeline.records import (
    Article,
    Event,
    EventArticle,
    Outlet,
    Segment,
    Translation,
    article_id_for,
    sha256_text,
)
from pipeline.settings import Settings

HOSTILE = '<script>alert("x")</script>'


def _fill(con) -> str:  # type: ignore[no-untyped-def]
    outlets = [
        Outlet("he1", "HaBoker", "he", "http://127.0.0.1/he"),
        Outlet("en1", "Ledger", "en", "http://127.0.0.1/en"),
    ]
    warehouse.upsert_outlets(con, outlets)
    texts = {
        "he1": [
            "ישראל הציעה לפנות את התושבים בתוך ארבעה שבועות.",
            'ארה"ב מעדיפה לוח זמנים ארוך יותר.',
        ],
        "en1": ["The US prefers about four months.", HOSTILE],
    }
    arts = []
    for oid, sents in texts.items():
        url = f"http://127.0.0.1/{oid}/a"
        text = "\n\n".join(sents)
        arts.append(
            Article(
                article_id_for(url),
                oid,
                url,
                f"title {oid}",
                datetime(2026, 11, 10, tzinfo=UTC),
                text,
                "page",
                sha256_text(text),
                oid[:2],
                0.99,
                "script",
            )
        )
    warehouse.load_articles(con, arts)
    segs = [
        Segment(a.article_id, i, i, s, a.lang)
        for a in arts
        for i, s in enumerate(texts[a.outlet_id])
    ]
    warehouse.load_segments(con, segs)
    # the second Hebrew sentence stays pending
    tr = [
        Translation(
            s.article_id,
            s.seg_no,
            "identity" if s.lang == "en" else "m",
            s.text if s.lang == "en" else "Israel proposed four weeks.",
            sha256_text(s.text),
        )
        for s in segs
        if not (s.lang == "he" and s.seg_no == 1)
    ]
    warehouse.load_translations(con, tr)
    ev = Event(
        "ev_1",
        "Rafah talks",
        arts[0].published_at,
        arts[1].published_at,
        ("en1", "he1"),
        ("en", "he"),
        2,
    )
    warehouse.load_events(con, [ev], [EventArticle("ev_1", a.article_id, 0.9) for a in arts])
    return "ev_1"


@pytest.fixture()
def filled(settings: Settings):  # type: ignore[no-untyped-def]
    with warehouse.open_warehouse(settings) as con:
        event_id = _fill(con)
        yield con, event_id


def test_html_has_outlet_columns_rtl_and_escapes_text(filled) -> None:  # type: ignore[no-untyped-def]
    con, event_id = filled
    view = load_event(con, event_id)
    assert [c.outlet_id for c in view.columns] == ["en1", "he1"]
    html = render_html(view)
    assert HOSTILE not in html and "&lt;script&gt;" in html
    assert 'dir="rtl" lang="he"' in html
    assert "ארבעה שבועות" in html and "four months" in html
    assert "translation pending" in html


@pytest.mark.parametrize("fmt", ["csv", "md", "parquet", "html"])
def test_every_format_writes_every_sentence(filled, tmp_path: Path, fmt: str) -> None:  # type: ignore[no-untyped-def]
    con, event_id = filled
    out = write_export(load_event(con, event_id), fmt, tmp_path / f"e.{fmt}")
    if fmt == "csv":
        with out.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 4
        assert sum(r["pending"] == "True" for r in rows) == 1
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        assert table.num_rows == 4 and "english" in table.column_names
    elif fmt == "md":
        text = out.read_text(encoding="utf-8")
        assert text.count("\n| ") >= 3  # header + two sentence rows
        assert "Ledger (en)" in text and "HaBoker (he)" in text
    else:
        assert out.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_unknown_event_and_format_give_clear_errors(filled, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    con, event_id = filled
    with pytest.raises(UnknownEvent, match="no event"):
        load_event(con, "nope")
    with pytest.raises(ValueError, match="unknown format"):
        write_export(load_event(con, event_id), "docx", tmp_path / "x")
