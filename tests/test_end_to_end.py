"""The whole pipeline on the bundled sample, served from 127.0.0.1, with the tiny Marian model."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline import warehouse
from pipeline.eval.events import read_gold, score_warehouse
from pipeline.ingest.outlets import load_outlets
from pipeline.records import Outlet
from pipeline.run import RunSummary, run_all, step_translate, warehouse_summary
from pipeline.sample_server import rebase
from pipeline.settings import PROJECT_ROOT, Settings, load_settings

GOLD = PROJECT_ROOT / "samples" / "gold_events.csv"
TABLES = [
    "outlets",
    "articles",
    "article_versions",
    "segments",
    "translations",
    "events",
    "event_articles",
]


def _outlets(base: str) -> list[Outlet]:
    return [
        replace(o, feed_url=rebase(o.feed_url, base))
        for o in load_outlets(PROJECT_ROOT / "config" / "outlets.toml")
    ]


def _settings(tmp: Path, models_dir: Path) -> Settings:
    return load_settings(
        warehouse=str(tmp / "wh.duckdb"),
        runtime_dir=tmp / "var",
        staging_dir=tmp / "var" / "staging",
        models_dir=models_dir,
        # the tiny random model never emits end-of-sentence: keep its nonsense short
        translate={"max_new_tokens": 16},
    )


@pytest.fixture(scope="module")
def with_models(
    tmp_path_factory: pytest.TempPathFactory, sample_server: str, tiny_models_dir: Path
) -> tuple[Settings, list[Outlet], RunSummary]:
    settings = _settings(tmp_path_factory.mktemp("e2e"), tiny_models_dir)
    outlets = _outlets(sample_server)
    return settings, outlets, run_all(outlets, settings)


def test_every_sample_article_lands_in_its_language(with_models) -> None:  # type: ignore[no-untyped-def]
    settings, outlets, _ = with_models
    gold = read_gold(GOLD)
    lang_of = {o.outlet_id: o.lang for o in outlets}
    with warehouse.open_warehouse(settings, read_only=True) as con:
        rows = con.execute("SELECT outlet_id, url, lang, text_source FROM articles").fetchall()
        score = score_warehouse(con, gold)
    assert len(rows) == len(gold) >= 36
    assert score.missing == 0
    wrong = [(o, u, lang) for o, u, lang, _ in rows if lang != lang_of[o]]
    assert wrong == []
    # pages that cannot be fetched or extracted fall back to the feed's own text
    assert {src for *_, src in rows} == {"page", "feed"}


def test_every_hebrew_and_arabic_segment_is_translated(with_models) -> None:  # type: ignore[no-untyped-def]
    settings, _, _ = with_models
    with warehouse.open_warehouse(settings, read_only=True) as con:
        missing = con.execute(
            "SELECT count(*) FROM parallel_text WHERE english IS NULL"
        ).fetchall()[0][0]
        by_lang = dict(
            con.execute(
                "SELECT s.lang, count(*) FROM segments s JOIN translations t USING (article_id, seg_no) "
                "WHERE (s.lang = 'en') = (t.model_id = 'identity') GROUP BY 1"
            ).fetchall()
        )
        passthrough_ok = con.execute(
            "SELECT bool_and(t.text_en = s.text) FROM segments s JOIN translations t USING (article_id, seg_no) "
            "WHERE s.lang = 'en'"
        ).fetchall()[0][0]
        summary = warehouse_summary(con)
    assert missing == 0
    assert set(by_lang) == {"he", "ar", "en"}
    assert passthrough_ok
    assert summary["pending"] == 0 and summary["translated"] > 0


def test_events_match_gold(with_models) -> None:  # type: ignore[no-untyped-def]
    settings, _, _ = with_models
    with warehouse.open_warehouse(settings, read_only=True) as con:
        score = score_warehouse(con, read_gold(GOLD))
    print(
        f"\nsample events (tiny model): {score.summary_line()} "
        f"pairwise P={score.pairwise.precision:.3f} R={score.pairwise.recall:.3f}"
    )
    assert score.pairwise.f1 >= 0.8


def test_second_run_changes_nothing(with_models) -> None:  # type: ignore[no-untyped-def]
    settings, outlets, _ = with_models
    with warehouse.open_warehouse(settings, read_only=True) as con:
        before = warehouse.table_counts(con, TABLES)
    summary = run_all(outlets, settings)
    assert summary.counts("load")["new"] == 0 and summary.counts("load")["edited"] == 0
    assert summary.counts("translate").get("translated", 0) == 0
    with warehouse.open_warehouse(settings) as con:
        assert warehouse.table_counts(con, TABLES) == before
        # dropping the translations and translating again is all cache hits
        con.execute("DELETE FROM translations WHERE model_id <> 'identity'")
        again = step_translate(con, settings)
        assert again.counts.get("translated", 0) == 0
        assert again.counts["cache_hits"] > 0
        assert warehouse.table_counts(con, TABLES) == before


def test_without_models_everything_else_runs(
    tmp_path: Path, sample_server: str, caplog: pytest.LogCaptureFixture, tiny_models_dir: Path
) -> None:
    settings = _settings(tmp_path, tmp_path / "empty-models")
    outlets = _outlets(sample_server)
    with caplog.at_level(logging.WARNING):
        run_all(outlets, settings)
    assert "parallax models download" in caplog.text and "PARALLAX_MODELS_DIR" in caplog.text
    with warehouse.open_warehouse(settings) as con:
        summary = warehouse_summary(con)
        assert summary["articles"] == len(read_gold(GOLD))
        assert summary["pending"] > 0 and summary["translated"] == 0
        assert summary["events"] > 0
        assert score_warehouse(con, read_gold(GOLD)).pairwise.f1 >= 0.8
    # a later `parallax translate` with models fills the pending segments in
    with warehouse.open_warehouse(replace(settings, models_dir=tiny_models_dir)) as con:
        step_translate(con, replace(settings, models_dir=tiny_models_dir))
        assert warehouse_summary(con)["pending"] == 0


def test_rebuild_gives_the_incremental_result(with_models) -> None:  # type: ignore[no-untyped-def]
    from pipeline.run import step_align

    settings, _, _ = with_models
    query = "SELECT event_id, article_id FROM event_articles ORDER BY ALL"
    with warehouse.open_warehouse(settings) as con:
        before = con.execute(query).fetchall()
        labels = con.execute("SELECT event_id, label FROM events ORDER BY ALL").fetchall()
        assert warehouse.clear_events(con) == len(before)
        assert warehouse.table_counts(con, ["events"])["events"] == 0
        step_align(con, settings)
        assert con.execute(query).fetchall() == before
        assert con.execute("SELECT event_id, label FROM events ORDER BY ALL").fetchall() == labels
