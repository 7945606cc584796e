"""The BM25 index kept incrementally: fts's own tokens and scores, the tables and results of a full
rebuild after any sequence of batches, repair after a crash, and work that follows the batch."""

from __future__ import annotations

import math
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipeline import warehouse
from pipeline.records import Article, Segment, Translation
from pipeline.search import bm25_index
from pipeline.search.filters import SearchFilters
from pipeline.search.index_store import FTS_SCHEMA
from pipeline.search.lexical import _article_scores, refresh_index
from pipeline.settings import Settings

T0 = datetime(2026, 11, 1, tzinfo=UTC)

# Texts that make tokenizers disagree; they go into search_docs as they are (not normalised),
# so our tokens must equal fts's on any string, not only on what `normalise` produces.
HOSTILE = [
    "",  # no token at all: still a document, of length 0
    "the of and a is",  # stop words only
    "... --- !!! ??? ///",  # separators only
    "Don't can't a's it's O'Neill rock'n'roll",  # apostrophes split; "t", "s" are stop words
    "İstanbul ΣΊΣΥΦΟΣ Straße ﬁnance ǅungla",  # lower() that changes length, final sigma, ligature
    "café cafe\u0301 naïve résumé",  # accents kept (strip_accents = 0); a combining mark splits
    "٣ ١٢٣ 12,5 3.14 ½ ² ⅷ",  # Arabic-Indic digits, separators inside numbers, No/Nl numbers
    "שָׁלוֹם עַל רפיח ברפיח",  # niqqud: marks are separators for fts
    "رفــــح والرئيس الرئيس",  # tatweel
    "zero\u200bwidth joiner\u200dhere rtl\u200fmark nbsp\u00a0space",
    "emoji 🙂🙂 tokens👍here 🇮🇱flags",
    "<script>alert('x')</script> '; DROP TABLE search_docs; --",
    "tab\tnew\nline\r\nend\x0bvt\x0cff",
    "x" * 300 + " running runs ran runner generalization generalizations",
    "ＦＵＬＬＷＩＤＴＨ ｆｕｌｌ ｗｉｄｔｈ",
    "MiXeD CaSe WORDS words Words wordS",
    "under_score snake_case hyphen-ated e-mail user@example.com",
]


@contextmanager
def _open(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    with warehouse.open_warehouse(settings) as con:
        yield con


def _copy_and_rebuild(settings: Settings, tmp: Path) -> tuple[dict[str, Any], Any]:
    """A copy of the warehouse with its index rebuilt from scratch: (index rows, connection)."""
    target = tmp / f"rebuilt-{random.random():.9f}.duckdb"
    shutil.copy(settings.warehouse, target)
    con = duckdb.connect(str(target))
    result = bm25_index.update(con, force_rebuild=True)
    assert result.rebuilt
    return bm25_index.index_rows(con), con


def _scores(con: Any, words: list[str], flt: SearchFilters, conjunctive: bool) -> dict[str, Any]:
    rows = _article_scores(con, words, flt, conjunctive=conjunctive, limit=None)
    return {aid: (seg, score) for aid, seg, score in rows}


def _same_scores(a: dict[str, Any], b: dict[str, Any], what: object) -> None:
    assert a.keys() == b.keys(), what
    for key in a:
        assert a[key][0] == b[key][0], (what, key)
        assert math.isclose(a[key][1], b[key][1], rel_tol=1e-9, abs_tol=1e-12), (what, key)


# ---------------------------------------------------------------- the same tokens as fts


def _tokens_sql(column: str) -> str:
    return f"SELECT DISTINCT unnest(fts_main_search_docs.tokenize({column})) AS w FROM search_docs"


def test_tokens_and_scores_equal_those_of_the_fts_index(
    demo_warehouse: Path, settings: Settings
) -> None:
    """The demo's sentences (with English borrowed from the English ones, so both columns count)
    and the hostile texts, indexed in two batches by us, then by `create_fts_index` itself: the
    same terms, tf, df, lengths and stats, and BM25 scores ln(10) times fts's `match_bm25`."""
    with _open(settings) as con:
        con.execute(f"ATTACH '{demo_warehouse}' AS demo (READ_ONLY)")
        demo = con.execute(
            "SELECT doc_id, lang, original_terms FROM demo.main.search_docs ORDER BY doc_id"
        ).fetchall()
        con.execute("DETACH demo")
        assert len(demo) > 100
        english = [t for _, lang, t in demo if lang == "en"]
        rows = [
            (doc, t, english[i % len(english)] if lang != "en" else "")
            for i, (doc, lang, t) in enumerate(demo)
        ]
        rows += [
            (f"hostile:{i}", text, HOSTILE[(i * 7 + 3) % len(HOSTILE)])
            for i, text in enumerate(HOSTILE)
        ]
        rows += [("hostile:empty", "", ""), ("hostile:stop", "the of and a", "... !!! ---")]
        half = len(rows) // 2
        for gen, batch in ((1, rows[:half]), (2, rows[half:])):
            con.executemany(
                "INSERT INTO search_docs (doc_id, article_id, seg_no, lang, original_terms, "
                "english_terms, digest, generation) VALUES (?, ?, 0, 'x', ?, ?, '-', ?)",
                [(d, d, o, e, gen) for d, o, e in batch],
            )
            con.execute("DELETE FROM search_index_state")
            con.execute("INSERT INTO search_index_state VALUES ('fts', ?, 0, NULL, NULL)", [gen])
            done = bm25_index.update(con)
            assert done.rebuilt == (gen == 1) and done.indexed == len(batch)
        ours = bm25_index.index_rows(con)

        con.execute(bm25_index.fts_pragma())
        f = FTS_SCHEMA
        fts_tf = con.execute(
            f"SELECT d.term, dd.name, count(*) FROM {f}.terms t JOIN {f}.dict d USING (termid) "
            f"JOIN {f}.docs dd USING (docid) GROUP BY ALL"
        ).fetchall()
        assert sorted(fts_tf, key=repr) == ours["postings"]
        assert sorted(con.execute(f"SELECT term, df FROM {f}.dict").fetchall()) == sorted(
            ours["dict"]
        )
        lengths = sorted(con.execute(f"SELECT name, len FROM {f}.docs").fetchall())
        assert lengths == sorted((r[0], r[7]) for r in ours["docmeta"])
        assert ("hostile:empty", 0) in lengths and ("hostile:stop", 0) in lengths  # as in fts
        (num_docs, avgdl), (our_docs, total) = (
            con.execute(f"SELECT * FROM {f}.stats").fetchall()[0],
            ours["stats"][0],
        )
        assert (num_docs, avgdl) == (our_docs, total / our_docs) == (len(rows), avgdl)
        assert set(bm25_index.fts_stopwords()) == {
            r[0] for r in con.execute(f"SELECT sw FROM {f}.stopwords").fetchall()
        }

        # queries: surface tokens of the documents (fts stems them, and so do we)
        surface = sorted(
            {r[0] for c in bm25_index.FIELDS for r in con.execute(_tokens_sql(c)).fetchall()} - {""}
        )
        rng = random.Random(4)
        queries = [[w] for w in rng.sample(surface, 24)]
        queries += [rng.sample(surface, 3) for _ in range(4)]
        queries += [["Words", "running"], ["רפיח", "ברפיח"], ["café", "straße", "٣"]]
        checked = 0
        for words in queries:
            for conjunctive in (False, True):
                got = _scores(con, words, SearchFilters(), conjunctive)
                if conjunctive and any(
                    w.lower() in bm25_index.fts_stopwords() for w in words
                ):  # the macro counts a stop word as a term no document has
                    continue
                macro = {
                    name: (0, score * math.log(10))
                    for name, score in con.execute(
                        f"SELECT * FROM (SELECT name, {f}.match_bm25(name, ?, "
                        f"conjunctive := ?) AS s FROM {f}.docs) WHERE s IS NOT NULL",
                        [" ".join(words), int(conjunctive)],
                    ).fetchall()
                }
                _same_scores(got, macro, (words, conjunctive))
                checked += bool(got)
        assert checked > 24


# ---------------------------------------------------------------- incremental == rebuild

VOCAB = {
    "he": ["רפיח", "ברפיח", "הצבא", "כנסת", "תקציב", "שיחות", "קהיר", "עזה", "ממשלה", "פינוי"],
    "ar": ["رفح", "برفح", "الجيش", "الكنيست", "موازنة", "محادثات", "القاهرة", "غزة", "حكومة"],
    "en": [
        "rafah",
        "army",
        "knesset",
        "budget",
        "talks",
        "cairo",
        "gaza",
        "government",
        "running",
        "the",
        "evacuations",
    ],
}


def _sentence(rng: random.Random, lang: str, n: int = 7) -> str:
    return " ".join(rng.choice(VOCAB[lang]) for _ in range(n))


def _article(i: int, lang: str, text: str, version_key: str = "") -> Article:
    return Article(
        f"a{i:03d}",
        f"o{i % 3}",
        f"http://127.0.0.1/{i}",
        f"t{i}",
        T0 + timedelta(hours=i),
        text,
        "page",
        f"s{i}{version_key}",
        lang,
        1.0,
        "test",
    )


def _add(con: Any, rng: random.Random, ids: range, *, segs: int = 3, key: str = "") -> None:
    langs = ("he", "ar", "en")
    arts, segments = [], []
    for i in ids:
        lang = langs[i % 3]
        texts = [_sentence(rng, lang) for _ in range(segs)]
        if i == 4 and not key:
            texts[1] += " zyzzyva"  # a word only this sentence has (deleted later)
        arts.append(_article(i, lang, "\n\n".join(texts), key))
        segments += [Segment(f"a{i:03d}", n, 0, t, lang) for n, t in enumerate(texts)]
    warehouse.load_articles(con, arts)
    warehouse.load_segments(con, segments)


def _translate(con: Any, rng: random.Random, where: str) -> int:
    rows = con.execute(
        f"SELECT article_id, seg_no FROM segments WHERE lang <> 'en' AND {where}"
    ).fetchall()
    warehouse.load_translations(
        con, [Translation(a, s, "test-mt", _sentence(rng, "en"), "-") for a, s in rows]
    )
    return len(rows)


QUERIES = [["rafah"], ["רפיח"], ["رفح"], ["running", "budget"], ["zyzzyva"], ["the", "gaza"]]
QUERIES += [["הצבא", "army"], ["برفح", "talks", "cairo"], ["evacuation"], ["knesset", "כנסת"]]
FILTERS = [SearchFilters(), SearchFilters(langs=("he", "en")), SearchFilters(outlets=("o1",))]
FILTERS += [SearchFilters(since=T0 + timedelta(hours=5), until=T0 + timedelta(hours=20))]


def _results(con: Any) -> dict[tuple[str, ...], Any]:
    """Every query, any and all words, unfiltered; a few under each filter."""
    out = {}
    for i, words in enumerate(QUERIES):
        for j, flt in enumerate(FILTERS if i < 3 else FILTERS[:1]):
            for conjunctive in (False, True) if j == 0 else (False,):
                out[(str(i), str(j), str(conjunctive))] = _scores(con, words, flt, conjunctive)
    return out


def test_incremental_batches_equal_a_full_rebuild(settings: Settings, tmp_path: Path) -> None:
    """New articles, English arriving later, edited articles (fewer and other sentences), a
    deleted sentence and an article whose time moved: after every batch, the incrementally
    kept index has the tables and gives the results (scores to 1e-9) of a rebuild."""
    rng = random.Random(11)

    def batch1(con: Any) -> None:
        _add(con, rng, range(0, 15))

    def batch2(con: Any) -> None:  # new articles, English for some earlier sentences
        _add(con, rng, range(15, 21))
        assert _translate(con, rng, "seg_no = 0 AND article_id < 'a009'") > 0

    def batch3(con: Any) -> None:  # edits: fewer sentences, other words; English for more
        _add(con, rng, range(3, 6), segs=2, key="v2")
        _translate(con, rng, "seg_no = 1")
        con.execute("DELETE FROM segments WHERE article_id = 'a010' AND seg_no = 2")

    def batch4(con: Any) -> None:  # an edited article's time moves; a later English wins
        con.execute(
            "UPDATE articles SET published_at = ?, version = version + 1 WHERE article_id = 'a007'",
            [T0 - timedelta(days=3)],
        )
        later = datetime.now(UTC) + timedelta(hours=1)
        warehouse.load_translations(
            con, [Translation("a000", 0, "test-mt-2", "rafah rafah talks", "-")], at=later
        )

    def batch5(con: Any) -> None:  # an article gone with all its sentences
        con.execute("DELETE FROM segments WHERE article_id = 'a016'")

    seen = []
    for n, step in enumerate((batch1, batch2, batch3, batch4, batch5)):
        with _open(settings) as con:
            step(con)
            refresh = refresh_index(con, compact_fraction=0.5)
            seen.append(refresh.index)
            # the tables after every batch; the query results (which follow from them, and
            # cost ~20 ms a query) after the ones with rewrites and deletions
            queried = n in (2, 4)
            got_rows, got = bm25_index.index_rows(con), _results(con) if queried else {}
        want_rows, other = _copy_and_rebuild(settings, tmp_path)
        try:
            assert got_rows == want_rows, f"batch {n + 1}"
            want = _results(other) if queried else {}
        finally:
            other.close()
        for key in want:
            _same_scores(got[key], want[key], (n + 1, key))
    first, second, third, fourth, fifth = seen
    assert first.rebuilt and not any(u.rebuilt for u in seen[1:])
    assert second.indexed == 6 * 3 + second.dropped and second.dropped > 0  # English arrived
    assert third.vanished == 3 + 1  # a003..a005 lost their third sentence, a010 one
    assert fourth.meta_updated == 3 and fourth.indexed == fourth.dropped == 1
    assert fifth.vanished == 3 and fifth.indexed == 0
    assert any(u.compacted for u in seen) and any(not u.compacted for u in seen[1:])
    assert "zyzzyva" not in {r[0] for r in got_rows["dict"]}  # its only sentence went
    assert got[("4", "0", "False")] == {} and got[("0", "0", "False")]


# ---------------------------------------------------------------- crashes


def _child_refresh(settings: Settings, fault: str) -> int:
    from tests.test_kill_mid_load import _child, _wait

    def go() -> None:
        with _open(settings) as con:
            refresh_index(con)

    return _wait(_child(go, env={"PARALLAX_FAULTS": fault}), timeout=120)


@pytest.mark.parametrize("fault", ["search.index.after_docs", "search.index.before_commit"])
def test_a_refresh_killed_midway_leaves_the_old_index_and_the_next_one_repairs_it(
    settings: Settings, tmp_path: Path, fault: str
) -> None:
    import os
    import signal

    rng = random.Random(3)
    with _open(settings) as con:
        _add(con, rng, range(0, 12))
        refresh_index(con)
        before = bm25_index.index_rows(con)
        built = bm25_index.read_built(con)
        _add(con, rng, range(12, 16))  # new sentences ...
        _translate(con, rng, "seg_no = 2")  # ... and English for old ones
        con.execute("DELETE FROM segments WHERE article_id = 'a001' AND seg_no = 0")
    status = _child_refresh(settings, f"{fault}=kill")
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    with _open(settings) as con:
        # the docs were written (with their generation) before the kill; the index is the old one
        gen = bm25_index.generation(con)
        assert built is not None and gen > built.generation
        stamped = con.execute("SELECT count(*) FROM search_docs WHERE generation = ?", [gen])
        assert stamped.fetchall()[0][0] == 4 * 3 + 8
        assert bm25_index.read_built(con) == built
        assert bm25_index.index_rows(con) == before
        repaired = refresh_index(con)
        assert repaired.changed == 0 and not repaired.rebuilt
        assert repaired.index.indexed == 4 * 3 + 8 and repaired.index.vanished == 1
        got = bm25_index.index_rows(con)
    want, other = _copy_and_rebuild(settings, tmp_path)
    other.close()
    assert got == want


# ---------------------------------------------------------------- work follows the batch


def test_a_small_batch_on_a_big_index_touches_only_the_batch(settings: Settings) -> None:
    """3,000 sentences indexed, then 10 new ones: the refresh tokenises 10 documents, adds
    only their postings and removes none; a deleted sentence removes exactly its postings."""
    rng = random.Random(8)
    with _open(settings) as con:
        _add(con, rng, range(0, 1000))
        first = refresh_index(con)
        assert first.rebuilt and first.index.indexed == 3000
        postings = first.index.postings
        _add(con, rng, range(1000, 1005), segs=2)
        small = refresh_index(con)
        upd = small.index
        assert small.changed == 10 and not upd.rebuilt and not upd.compacted
        assert (upd.indexed, upd.dropped, upd.vanished, upd.postings_removed) == (10, 0, 0, 0)
        new = con.execute(
            "SELECT count(*) FROM lexical_index.postings p JOIN lexical_index.docmeta m "
            "USING (docid) WHERE m.article_id LIKE 'a100_'"
        ).fetchall()[0][0]
        assert upd.postings_added == new > 0 and upd.postings == postings + new
        doomed = con.execute(
            "SELECT count(*) FROM lexical_index.postings p JOIN lexical_index.docmeta m "
            "USING (docid) WHERE m.doc_id = 'a500:1'"
        ).fetchall()[0][0]
        con.execute("DELETE FROM segments WHERE article_id = 'a500' AND seg_no = 1")
        gone = refresh_index(con).index
        assert (gone.indexed, gone.dropped, gone.vanished) == (0, 1, 1)
        assert gone.postings_removed == doomed > 0
        assert refresh_index(con).index == bm25_index.NOTHING  # nothing new: nothing done


# ---------------------------------------------------------------- on a DuckLake


def test_incremental_updates_on_a_ducklake_equal_those_on_a_file(
    pg_cluster: Any, tmp_path: Path
) -> None:
    """The same batches on a DuckLake (index in the local cache, search_docs and its generation
    in the lake) and on a DuckDB file: the same index after each refresh, updated, not rebuilt."""
    from pipeline.search.index_store import search_index
    from pipeline.settings import load_settings
    from tests.test_warehouse_lake import lake_settings

    file = load_settings(warehouse=str(tmp_path / "wh.duckdb"), runtime_dir=tmp_path / "var-f")
    lake = lake_settings(pg_cluster, tmp_path)
    got: dict[str, list[Any]] = {}
    for name, settings in (("file", file), ("lake", lake)):
        rng = random.Random(21)
        got[name] = []
        for step in range(2):
            with warehouse.open_warehouse(settings) as con, search_index(con, settings):
                if step == 0:
                    _add(con, rng, range(0, 9))
                else:  # new sentences, English for old ones, an article's sentences gone
                    _add(con, rng, range(9, 12))
                    _translate(con, rng, "seg_no = 0")
                    con.execute("DELETE FROM segments WHERE article_id = 'a002'")
                refresh = refresh_index(con)
                got[name].append((refresh.rebuilt, refresh.index.indexed, refresh.index.vanished))
                got[name].append(bm25_index.index_rows(con))
    assert got["lake"] == got["file"]
    assert [x for x in got["lake"] if isinstance(x, tuple)] == [
        (True, 27, 0),
        (False, 9 + 6, 3),
    ]
