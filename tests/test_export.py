"""Export of an event as statement rows, in every format, from a warehouse filled by the loaders."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline import warehouse
from pipeline.export.formats import render_markdown
from pipeline.export.side_by_side import UnknownEvent, load_event, render_html, write_export
from pipeline.export.statements import ROW_FIELDS
from pipeline.export.text import safe_href, visible
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
from tests.export_rows import check_round_trip

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
        "en1": ["The US prefers about four months.", HOSTILE, "Talks resume on Sunday."],
    }
    arts = []
    for day, (oid, sents) in enumerate(texts.items(), start=10):
        url = f"http://127.0.0.1/{oid}/a"
        text = "\n\n".join(sents)
        arts.append(
            Article(
                article_id_for(url),
                oid,
                url,
                f"title {oid}",
                datetime(2026, 11, day, tzinfo=UTC),  # the Hebrew outlet reports first
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
    he, en = arts[0].article_id, arts[1].article_id
    a, b, sa, sb = (he, en, 0, 0) if he < en else (en, he, 0, 0)
    con.execute("INSERT INTO segment_links VALUES ('ev_1', ?, ?, ?, ?, 0.5, '1:1')", [a, sa, b, sb])
    span = {he: ("ארבעה שבועות", 28.0), en: ("four months", 120.0)}
    con.execute(
        "INSERT INTO divergences VALUES ('ev_1', ?, 0, ?, 0, 'duration', ?, ?, ?, ?, 'day', '', '')",
        [a, b, span[a][0], span[b][0], span[a][1], span[b][1]],
    )
    return "ev_1"


@pytest.fixture()
def filled(settings: Settings):  # type: ignore[no-untyped-def]
    with warehouse.open_warehouse(settings) as con:
        event_id = _fill(con)
        yield con, event_id


def test_statements_group_linked_sentences_and_follow_the_first_reporter(filled) -> None:  # type: ignore[no-untyped-def]
    con, event_id = filled
    ev = load_event(con, event_id)
    assert [o.outlet_id for o in ev.outlets] == ["he1", "en1"]  # by first publication
    assert ev.outlets[0].first_reporter and not ev.outlets[1].first_reporter
    first = ev.statements[0]
    assert [len(c) for c in first.cells] == [1, 1] and first.unique_to is None
    assert first.kinds == ("duration",)
    # the reporter's own text stays in order; the Ledger's extras (no shared statement after
    # them in its text) come last
    rest = [(st.unique_to, st.cells[0] or st.cells[1]) for st in ev.statements[1:]]
    assert [(u, c[0].seg_no) for u, c in rest] == [("he1", 1), ("en1", 1), ("en1", 2)]
    rows = ev.rows()
    assert len(rows) == 5 and [r.statement for r in rows] == [1, 1, 2, 3, 4]
    pending = [r for r in rows if r.pending]
    assert len(pending) == 1 and pending[0].english == "" and pending[0].lang == "he"
    assert all(r.english == r.original for r in rows if r.lang == "en")
    assert [r.divergence_kinds for r in rows[:2]] == ["duration", "duration"]
    assert [e.label for e in ev.differ] == ["duration"]
    assert [(v.value, [o.outlet_id for o in v.outlets]) for v in ev.differ[0].values] == [
        ("4 weeks", ["he1"]),
        ("4 months", ["en1"]),
    ]


def test_html_aligns_rtl_highlights_both_sides_and_escapes_text(filled) -> None:  # type: ignore[no-untyped-def]
    con, event_id = filled
    html = render_html(load_event(con, event_id))
    assert HOSTILE not in html and "&lt;script&gt;" in html
    assert 'dir="rtl" lang="he"' in html
    assert '<mark class="div" data-kind="duration"' in html
    assert ">ארבעה שבועות</mark>" in html and ">four months</mark>" in html
    assert "Where outlets differ" in html and "4 weeks" in html and "4 months" in html
    assert "translation pending" in html
    assert html.count("The US prefers about ") == 1  # English shown once
    assert "<script" not in html  # the event page carries no script at all


def test_every_format_has_the_same_rows(filled, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    con, event_id = filled
    ev = load_event(con, event_id)
    check_round_trip(ev, tmp_path)


def test_markdown_keeps_hostile_text_as_text(filled) -> None:  # type: ignore[no-untyped-def]
    con, event_id = filled
    md = render_markdown(load_event(con, event_id))
    assert HOSTILE not in md and "&lt;script&gt;" in md
    assert md.splitlines()[-1].count(" | ") == len(ROW_FIELDS) - 1


def test_text_helpers() -> None:
    assert visible("a\u202eb\u2067c\u200f") == "a[U+202E]b[U+2067]c\u200f"
    assert safe_href("https://x.test/a?b=1") == "https://x.test/a?b=1"
    for bad in (
        "javascript:alert(1)",
        " JAVASCRIPT:alert(1)",
        "data:text/html,x",
        "//x.test",
        "http://x.test/\u202e",
        "http://x.test/a b",
        "",
        None,
        "http:///nohost",
    ):
        assert safe_href(bad) is None, bad


def test_unknown_event_and_format_give_clear_errors(filled, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    con, event_id = filled
    with pytest.raises(UnknownEvent, match="no event"):
        load_event(con, "nope")
    with pytest.raises(ValueError, match="unknown format"):
        write_export(load_event(con, event_id), "docx", tmp_path / "x")
