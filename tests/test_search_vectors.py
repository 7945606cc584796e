"""The in-memory vector matrix gives the SQL scan's exact hits under every filter, is reused
while the warehouse is unchanged and reloaded when a vector or an article changes; the lexical
index's document metadata follows an edited article."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from pipeline import warehouse
from pipeline.records import Article, Segment
from pipeline.search import vector_index
from pipeline.search.filters import SearchFilters
from pipeline.search.lexical import refresh_index, search_lexical
from pipeline.search.semantic import search_semantic

EMB = "test-vectors"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _fill(con: Any, n: int = 60) -> np.random.Generator:
    rng = np.random.default_rng(5)
    langs = ("he", "ar", "en")
    arts = [
        Article(
            f"a{i:03d}",
            f"o{i % 4}",
            f"http://127.0.0.1/{i}",
            f"t{i}",
            None if i == 7 else T0 + timedelta(hours=i),
            f"word{i % 5} text {i}",
            "page",
            f"s{i}",
            langs[i % 3],
            1.0,
            "test",
        )
        for i in range(n)
    ]
    warehouse.load_articles(con, arts)
    warehouse.load_segments(con, [Segment(a.article_id, 0, 0, a.text, a.lang) for a in arts])
    for a in arts:
        vec = rng.standard_normal(16)
        if a.article_id == "a010":
            vec = np.zeros(16)  # a degenerate vector: never a hit, never a crash
        con.execute(
            "INSERT INTO article_vectors VALUES (?, ?, ?, ?)",
            [a.article_id, EMB, a.text_sha256, [float(x) for x in vec]],
        )
    return rng


FILTERS = [
    SearchFilters(),
    SearchFilters(langs=("he",)),
    SearchFilters(langs=("ar", "en"), outlets=("o1", "o2")),
    SearchFilters(since=T0 + timedelta(hours=10), until=T0 + timedelta(hours=40)),
    SearchFilters(outlets=("nobody",)),
]


def _same(con: Any, q: np.ndarray, flt: SearchFilters, **kw: Any) -> list[str]:
    fast = search_semantic(con, q, EMB, flt, sentences=False, **kw)
    slow = search_semantic(con, q, EMB, flt, sentences=False, scan=True, **kw)
    assert [h.article_id for h in fast] == [h.article_id for h in slow], flt
    assert np.allclose([h.score for h in fast], [h.score for h in slow], atol=1e-5)
    return [h.article_id for h in fast]


def test_matrix_equals_scan_under_filters_and_follows_changes(settings: Any) -> None:
    vector_index.clear()
    with warehouse.open_warehouse(settings) as con:
        rng = _fill(con)
        queries = [rng.standard_normal(16).astype(np.float32) for _ in range(4)]
        for q in queries:
            for flt in FILTERS:
                hits = _same(con, q, flt, limit=7)
                assert len(hits) == (0 if flt.outlets == ("nobody",) else 7)
            _same(con, q, SearchFilters(), limit=100, min_score=0.2)
        matrix = vector_index.article_matrix(con, EMB)
        assert vector_index.article_matrix(con, EMB) is matrix  # unchanged: reused
        # one vector replaced (its article's text changed): reloaded, the new vector wins
        q = queries[0]
        con.execute(
            "UPDATE article_vectors SET vector = ?, text_sha256 = 'new' WHERE article_id = 'a005'",
            [[float(x) for x in q]],
        )
        assert _same(con, q, SearchFilters(), limit=3)[0] == "a005"
        assert vector_index.article_matrix(con, EMB) is not matrix
        # an article's time moved (an edit): the time filter follows
        matrix = vector_index.article_matrix(con, EMB)
        con.execute(
            "UPDATE articles SET published_at = ?, version = version + 1 WHERE article_id = 'a005'",
            [T0 - timedelta(days=30)],
        )
        assert "a005" not in _same(con, q, SearchFilters(since=T0), limit=60)
        assert vector_index.article_matrix(con, EMB) is not matrix


def test_lexical_filters_follow_an_edited_article(settings: Any) -> None:
    with warehouse.open_warehouse(settings) as con:
        _fill(con, n=12)
        refresh_index(con)
        since = SearchFilters(since=T0)
        assert "a001" in {h.article_id for h in search_lexical(con, "word1", since)}
        con.execute(
            "UPDATE articles SET published_at = ?, version = version + 1 WHERE article_id = 'a001'",
            [T0 - timedelta(days=30)],
        )
        again = refresh_index(con)  # no sentence changed: only the document metadata
        assert again.meta_only and not again.rebuilt and again.changed == 0
        assert "a001" not in {h.article_id for h in search_lexical(con, "word1", since)}
        assert refresh_index(con).meta_only is False  # and it stays put


@pytest.mark.parametrize("k", [1, 5])
def test_top_k_keeps_ties_in_id_order(k: int) -> None:
    matrix = vector_index.VectorMatrix(
        fingerprint=(),
        ids=np.array(["c", "a", "b", "d"], dtype=object),
        vectors=np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32),
        lang=np.zeros(4, dtype=np.int16),
        langs=["en"],
        outlet=np.zeros(4, dtype=np.int32),
        outlets=["o"],
        published_us=np.zeros(4, dtype=np.int64),
    )
    got = matrix.top_k(np.array([1, 0], dtype=np.float32), SearchFilters(), k)
    assert [a for a, _ in got] == ["a", "b", "c", "d"][:k]
