"""Vectors by embedder and text hash in a folder shared across warehouses and processes.

A warehouse caches its own vectors (`article_vectors`, `segment_vectors`), but a fresh warehouse
over the same texts (an eval run over a dev set, a rebuild, a second desk, a test) would embed
them all again, and embedding is the slowest CPU step of a run. With `align.vector_store` set
(or PARALLAX_VECTOR_STORE), `StoredEmbedder` answers the texts it has seen from the folder and
embeds only the others. One small `.npy` file per vector, written to a temporary name and
renamed, so concurrent workers never read half a file and the worst race embeds a text twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from pipeline.align.vectors import Embedder

log = logging.getLogger(__name__)


class StoredEmbedder:
    """An embedder whose vectors are kept in (and served from) a folder; same name and dim."""

    def __init__(self, inner: Embedder, folder: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.folder = Path(folder) / _safe(inner.name)
        self.hits = self.misses = 0

    def _path(self, text: str) -> Path:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return self.folder / digest[:2] / f"{digest}.npy"

    def _read(self, path: Path) -> np.ndarray | None:
        try:
            vec = np.load(path, allow_pickle=False)
        except (OSError, ValueError):  # absent, or damaged: embed again (and overwrite)
            return None
        return vec if vec.shape == (self.dim,) and vec.dtype == np.float32 else None

    def _write(self, path: Path, vec: np.ndarray) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, vec.astype(np.float32), allow_pickle=False)
            os.replace(tmp, path)
        except OSError as exc:  # a full or read-only store costs speed, never the run
            log.warning("vector store %s not written (%s)", self.folder, exc)

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        paths = [self._path(t) for t in texts]
        todo: dict[str, list[int]] = {}
        for i, (text, path) in enumerate(zip(texts, paths, strict=True)):
            vec = self._read(path)
            if vec is None:
                todo.setdefault(text, []).append(i)
            else:
                out[i] = vec
        self.hits += len(texts) - sum(len(v) for v in todo.values())
        self.misses += len(todo)
        if todo:
            fresh = self.inner.embed(list(todo)).astype(np.float32)
            for vec, (_, rows) in zip(fresh, todo.items(), strict=True):
                out[rows] = vec
                self._write(paths[rows[0]], vec)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """Queries are not stored (they are not texts of the warehouse)."""
        fn = getattr(self.inner, "embed_query", None)
        return fn(text) if callable(fn) else self.inner.embed([text])[0]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "embedder"
