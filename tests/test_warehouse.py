"""The warehouse: migrations, idempotent loads, article versions, offline extensions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from pipeline import warehouse
from pipeline.records import (
    Article,
    Outlet,
    Reject,
    Segment,
    Translation,
    article_id_for,
    sha256_text,
)
from pipeline.settings import Settings


def _article(url: str, text: str, outlet: str = "o1", lang: str = "he") -> Article:
    return Article(
        article_id=article_id_for(url),
        outlet_id=outlet,
        url=url,
        title="t",
        published_at=datetime(2026, 11, 10, 8, 0, tzinfo=UTC),
        text=text,
        text_source="page",
        text_sha256=sha256_text(text),
        lang=lang,
        lang_confidence=0.99,
        lang_method="script",
    )


def test_migrate_records_version_and_is_repeatable(settings: Settings) -> None:
    con = warehouse.connect(settings)
    v1 = warehouse.migrate(con, settings.schema_dir)
    v2 = warehouse.migrate(con, settings.schema_dir)
    assert v1 == v2 >= 1
    tables = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    for name in (
        "outlets",
        "articles",
        "segments",
        "translations",
        "events",
        "event_articles",
        "parallel_text",
    ):
        assert name in tables
    # one row per migration file; numbers are assigned per work item, so they may have gaps
    files = sorted(settings.schema_dir.glob("[0-9][0-9][0-9]_*.sql"))
    assert con.execute("SELECT count(*) FROM schema_version").fetchall()[0][0] == len(files)
    assert v1 == int(files[-1].name[:3])
    con.close()


def test_load_articles_is_idempotent_and_versions_edits(settings: Settings) -> None:
    with warehouse.open_warehouse(settings) as con:
        warehouse.upsert_outlets(con, [Outlet("o1", "Outlet", "he", "http://127.0.0.1/feed")])
        a = _article("http://127.0.0.1/a", "שלום עולם. זו ידיעה.")
        b = _article("http://127.0.0.1/b", "ידיעה אחרת לגמרי.")
        first = warehouse.load_articles(con, [a, b])
        assert sorted(first.new) == sorted([a.article_id, b.article_id])
        again = warehouse.load_articles(con, [a, b])
        assert again.new == [] and again.edited == [] and again.unchanged == 2
        warehouse.load_segments(con, [Segment(a.article_id, 0, 0, "שלום עולם.", "he")])
        warehouse.load_translations(
            con, [Translation(a.article_id, 0, "m", "hello world", sha256_text("שלום עולם."))]
        )
        edited = replace(a, text="שלום עולם. זו ידיעה מעודכנת.", text_sha256=sha256_text("x"))
        res = warehouse.load_articles(con, [edited])
        assert res.edited == [a.article_id]
        rows = con.execute(
            "SELECT version, text FROM article_versions WHERE article_id = ? ORDER BY version",
            [a.article_id],
        ).fetchall()
        assert [r[0] for r in rows] == [1, 2]
        assert rows[0][1] == a.text  # the earlier text is kept
        assert warehouse.table_counts(con, ["articles"])["articles"] == 2
        # segments of the old text are dropped so they get re-derived
        assert warehouse.table_counts(con, ["segments", "translations"]) == {
            "segments": 0,
            "translations": 0,
        }


def test_same_outlet_same_text_under_new_url_is_a_duplicate(settings: Settings) -> None:
    with warehouse.open_warehouse(settings) as con:
        a = _article("http://127.0.0.1/a", "same text")
        dup = _article("http://127.0.0.1/a-amp", "same text")
        other_outlet = _article("http://127.0.0.1/wire", "same text", outlet="o2")
        res = warehouse.load_articles(con, [a, dup, other_outlet])
        assert res.duplicates == 1
        assert len(res.new) == 2  # a wire copy in another outlet counts as that outlet's coverage


def test_rejects_and_pending_view(settings: Settings) -> None:
    with warehouse.open_warehouse(settings) as con:
        a = _article("http://127.0.0.1/a", "טקסט")
        warehouse.load_articles(con, [a])
        warehouse.load_segments(con, [Segment(a.article_id, 0, 0, "טקסט", "he")])
        assert con.execute("SELECT count(*) FROM pending_translations").fetchall()[0][0] == 1
        assert [s.seg_no for s in warehouse.segments_without_translation(con)] == [0]
        assert warehouse.english_text(con) == {}
        warehouse.load_rejects(
            con, [Reject("ingest", "o1", "http://x/", "feed_malformed", "boom")] * 2
        )
        assert warehouse.table_counts(con, ["rejects"])["rejects"] == 1


def test_fts_extension_loads_offline(settings: Settings) -> None:
    import duckdb_extensions

    with warehouse.open_warehouse(settings) as con:
        duckdb_extensions.import_extension("fts", con=con)
        for i, text in enumerate(
            ["הפסקת אש ברפיח", "وقف إطلاق النار في رفح", "ceasefire in Rafah"]
        ):
            warehouse.load_articles(con, [_article(f"http://127.0.0.1/{i}", text)])
        con.execute(
            "PRAGMA create_fts_index('articles', 'article_id', 'text', stemmer='none', overwrite=1)"
        )
        hits = con.execute(
            "SELECT text FROM (SELECT text, fts_main_articles.match_bm25(article_id, 'رفح') AS s "
            "FROM articles) WHERE s IS NOT NULL"
        ).fetchall()
        assert hits == [("وقف إطلاق النار في رفح",)]


def test_locked_file_raises_clear_error(settings: Settings) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    release = ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(settings.warehouse, ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        with pytest.raises(warehouse.WarehouseLocked):
            warehouse.connect(settings, lock_retries=2, lock_backoff_s=0.05)
    finally:
        release.set()
        proc.join(10)


def _hold_lock(path: str, ready, release) -> None:  # type: ignore[no-untyped-def]
    import duckdb

    con = duckdb.connect(path)
    ready.set()
    release.wait(30)
    con.close()


def test_feed_items_sharing_a_summary_are_kept_apart(settings: Settings) -> None:
    from pipeline.ingest.dedupe import dedupe_articles

    summary = "Live updates from the region."
    a = replace(_article("http://127.0.0.1/a", summary), text_source="feed", title="Aleppo")
    b = replace(_article("http://127.0.0.1/b", summary), text_source="feed", title="Idlib")
    same = replace(_article("http://127.0.0.1/c", summary), text_source="feed", title="Aleppo")
    kept, dropped = dedupe_articles([a, b, same])
    assert [x.url for x in kept] == [a.url, b.url] and dropped == 1
    with warehouse.open_warehouse(settings) as con:
        assert len(warehouse.load_articles(con, [a, b]).new) == 2
        assert warehouse.load_articles(con, [same]).duplicates == 1
