"""Article vectors held in memory as one normalised float32 matrix, for exact cosine top-k.

Scanning `article_vectors` in SQL (`list_cosine_similarity` over FLOAT[] lists) costs seconds at
100,000 articles; one matrix-vector product over the same vectors held in numpy costs tens of
milliseconds (bench/bench_search.py prints both, measured in the same run). The matrix is
loaded once per process and warehouse, and reused while a fingerprint of what it was built
from is unchanged:

- `article_vectors` of the embedder: row count and an order-free hash (xor) of the text hashes
  — a vector changes only with its article's text hash or the embedder's name (`Embedder.name`
  changes whenever vectors would), and rows come and go with the count;
- `articles`: row count, the sum of versions and the latest update — an article's language,
  outlet and time (the filters, kept beside the matrix) change only when it is added or edited.

The fingerprint is two column scans (about 10 ms at 100,000 articles on 2 cores); a mismatch
reloads the whole matrix (about 2 s at 100,000). Filters (language, outlet, time window) are
masks over arrays kept with the matrix, applied before the top-k, so a filtered search returns
the exact filtered top-k, the same as the SQL scan. At most `MAX_CACHED` matrices are kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import duckdb

    from pipeline.search.filters import SearchFilters

log = logging.getLogger(__name__)

MAX_CACHED = 2  # (warehouse, embedder) matrices kept per process: 150 MB each at 100k x 384
_NO_TIME = np.iinfo(np.int64).min


@dataclass
class VectorMatrix:
    """Unit vectors of one embedder's articles, with what the filters need."""

    fingerprint: tuple[Any, ...]
    ids: np.ndarray  # article ids (object), row order
    vectors: np.ndarray  # (n, dim) float32, rows of unit length (zero rows stay zero)
    lang: np.ndarray  # int16 code per row, into langs
    langs: list[str]
    outlet: np.ndarray  # int32 code per row, into outlets
    outlets: list[str]
    published_us: np.ndarray  # int64 microseconds since the epoch; _NO_TIME when unknown
    load_s: float = 0.0
    valid: np.ndarray | None = None  # rows with a non-zero vector; None: all of them

    def __len__(self) -> int:
        return len(self.ids)

    def mask(self, filters: SearchFilters) -> np.ndarray | None:
        """Rows passing the filters; None when nothing is filtered."""
        keep: np.ndarray | None = self.valid

        def both(m: np.ndarray) -> None:
            nonlocal keep
            keep = m if keep is None else keep & m

        if filters.langs:
            codes = [i for i, lang in enumerate(self.langs) if lang in set(filters.langs)]
            both(np.isin(self.lang, codes))
        if filters.outlets:
            codes = [i for i, o in enumerate(self.outlets) if o in set(filters.outlets)]
            both(np.isin(self.outlet, codes))
        if filters.since is not None:
            both(self.published_us >= _micros(filters.since))
        if filters.until is not None:
            both((self.published_us < _micros(filters.until)) & (self.published_us != _NO_TIME))
        return keep

    def top_k(
        self,
        query: np.ndarray,
        filters: SearchFilters,
        k: int,
        *,
        min_score: float | None = None,
    ) -> list[tuple[str, float]]:
        """(article_id, cosine) of the k best rows passing the filters, best first, ties by
        article id (the SQL scan's order)."""
        if not len(self) or k <= 0:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(q))
        if norm > 0:
            q = q / norm
        scores = self.vectors @ q
        keep = self.mask(filters)
        if min_score is not None:
            floor = scores >= np.float32(min_score)
            keep = floor if keep is None else keep & floor
        rows = np.flatnonzero(keep) if keep is not None else np.arange(len(self))
        if not len(rows):
            return []
        sub = scores[rows]
        if len(rows) > k:
            # keep every row tied with the k-th best, then order exactly
            kth = np.partition(sub, len(sub) - k)[len(sub) - k]
            pick = np.flatnonzero(sub >= kth)
            rows, sub = rows[pick], sub[pick]
        ids = self.ids[rows]
        order = sorted(range(len(rows)), key=lambda i: (-float(sub[i]), ids[i]))[:k]
        return [(str(ids[i]), float(sub[i])) for i in order]


def _micros(when: Any) -> int:
    return int(when.timestamp() * 1_000_000)


@dataclass
class SentenceMatrix:
    """Unit sentence vectors of one embedder, grouped by article: which sentence of a hit is
    closest to the query. float16 (half the memory; only a hit's few rows are ever multiplied)."""

    fingerprint: tuple[Any, ...]
    rows: dict[str, tuple[int, int]]  # article_id -> [start, end) rows
    seg_no: np.ndarray  # int32 per row
    vectors: np.ndarray  # (n, dim) float16
    load_s: float = 0.0

    def best(self, query: np.ndarray, article_ids: list[str]) -> dict[str, int]:
        """The closest sentence of each article that has sentence vectors (ties: lowest
        seg_no)."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        out: dict[str, int] = {}
        for aid in article_ids:
            span = self.rows.get(aid)
            if span is None:
                continue
            scores = self.vectors[span[0] : span[1]].astype(np.float32) @ q
            out[aid] = int(self.seg_no[span[0] + int(np.argmax(scores))])
        return out


_CACHE: OrderedDict[tuple[str, str], VectorMatrix] = OrderedDict()
_SENTENCES: OrderedDict[tuple[str, str], SentenceMatrix] = OrderedDict()
_LOCK = threading.Lock()


def _warehouse_key(con: duckdb.DuckDBPyConnection) -> str:
    rows = con.execute(
        "SELECT coalesce(path, database_name) FROM duckdb_databases() "
        "WHERE database_name = current_database()"
    ).fetchall()
    return str(rows[0][0]) if rows else "?"


def fingerprint(con: duckdb.DuckDBPyConnection, embedder: str) -> tuple[Any, ...]:
    """What the matrix was built from, in two cheap scans (see the module docstring)."""
    vec = con.execute(
        "SELECT count(*), coalesce(bit_xor(hash(text_sha256)), 0) "
        "FROM article_vectors WHERE embedder = ?",
        [embedder],
    ).fetchall()[0]
    art = con.execute(
        "SELECT count(*), coalesce(sum(version), 0), max(updated_at) FROM articles"
    ).fetchall()[0]
    return (*vec, *art)


def _load(con: duckdb.DuckDBPyConnection, embedder: str, fp: tuple[Any, ...]) -> VectorMatrix:
    import pyarrow as pa
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    table = con.execute(
        """
        SELECT v.article_id, v.vector, a.lang, a.outlet_id,
               epoch_us(a.published_at) AS published_us
        FROM article_vectors v JOIN articles a USING (article_id)
        WHERE v.embedder = ?
        ORDER BY v.article_id
        """,
        [embedder],
    ).to_arrow_table()
    n = table.num_rows
    if n:
        lists = table.column("vector").combine_chunks()
        lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
        dim = int(lengths.max())
        if (lengths != dim).any():
            raise ValueError(f"article vectors of {embedder} differ in length")
        flat = pc.list_flatten(lists).cast(pa.float32()).to_numpy(zero_copy_only=False)
        vectors = np.array(flat.reshape(n, dim), dtype=np.float32, order="C", copy=True)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, norms, out=vectors, where=norms > 0)
    else:
        vectors = np.zeros((0, 0), dtype=np.float32)
        norms = np.zeros((0, 1), dtype=np.float32)
    langs_col = [x if x is not None else "" for x in table.column("lang").to_pylist()]
    outlets_col = [str(x) for x in table.column("outlet_id").to_pylist()]
    langs = sorted(set(langs_col))
    outlets = sorted(set(outlets_col))
    lang_ix = {x: i for i, x in enumerate(langs)}
    outlet_ix = {x: i for i, x in enumerate(outlets)}
    published = table.column("published_us").to_pylist()
    matrix = VectorMatrix(
        fingerprint=fp,
        ids=np.array(table.column("article_id").to_pylist(), dtype=object),
        vectors=vectors,
        lang=np.array([lang_ix[x] for x in langs_col], dtype=np.int16),
        langs=langs,
        outlet=np.array([outlet_ix[x] for x in outlets_col], dtype=np.int32),
        outlets=outlets,
        published_us=np.array([_NO_TIME if p is None else p for p in published], np.int64),
    )
    if n and not (norms > 0).all():  # a zero vector has no direction: never a hit
        matrix.valid = (norms > 0).reshape(-1)
    matrix.load_s = time.perf_counter() - t0
    log.info("search: %d article vectors of %s loaded in %.2fs", n, embedder, matrix.load_s)
    return matrix


def article_matrix(con: duckdb.DuckDBPyConnection, embedder: str) -> VectorMatrix:
    """The matrix of `embedder`'s article vectors in this warehouse: the cached one while its
    fingerprint holds, else loaded afresh."""
    key = (_warehouse_key(con), embedder)
    fp = fingerprint(con, embedder)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached.fingerprint == fp:
            _CACHE.move_to_end(key)
            return cached
    matrix = _load(con, embedder, fp)
    with _LOCK:
        _CACHE[key] = matrix
        _CACHE.move_to_end(key)
        while len(_CACHE) > MAX_CACHED:
            _CACHE.popitem(last=False)
    return matrix


def sentence_fingerprint(con: duckdb.DuckDBPyConnection, embedder: str) -> tuple[Any, ...]:
    """Sentence vectors are added per article (count) and replaced only with their article's
    text, which moves the articles' version sum."""
    n = con.execute(
        "SELECT count(*) FROM segment_vectors WHERE embedder = ?", [embedder]
    ).fetchall()[0][0]
    art = con.execute(
        "SELECT count(*), coalesce(sum(version), 0), max(updated_at) FROM articles"
    ).fetchall()[0]
    return (n, *art)


def _load_sentences(
    con: duckdb.DuckDBPyConnection, embedder: str, fp: tuple[Any, ...]
) -> SentenceMatrix:
    import pyarrow as pa
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    table = con.execute(
        "SELECT article_id, seg_no, vector FROM segment_vectors WHERE embedder = ? "
        "ORDER BY article_id, seg_no",
        [embedder],
    ).to_arrow_table()
    n = table.num_rows
    rows: dict[str, tuple[int, int]] = {}
    if n:
        lists = table.column("vector").combine_chunks()
        lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
        dim = int(lengths.max())
        if (lengths != dim).any():
            raise ValueError(f"sentence vectors of {embedder} differ in length")
        flat = pc.list_flatten(lists).cast(pa.float32()).to_numpy(zero_copy_only=False)
        vectors = np.array(flat.reshape(n, dim), dtype=np.float32, copy=True)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, norms, out=vectors, where=norms > 0)
        ids = table.column("article_id").to_pylist()
        start = 0
        for i in range(1, n + 1):
            if i == n or ids[i] != ids[start]:
                rows[ids[start]] = (start, i)
                start = i
        half = vectors.astype(np.float16)
    else:
        half = np.zeros((0, 0), dtype=np.float16)
    matrix = SentenceMatrix(
        fingerprint=fp,
        rows=rows,
        seg_no=np.array(table.column("seg_no").to_pylist(), dtype=np.int32),
        vectors=half,
    )
    matrix.load_s = time.perf_counter() - t0
    log.info("search: %d sentence vectors of %s loaded in %.2fs", n, embedder, matrix.load_s)
    return matrix


def sentence_matrix(con: duckdb.DuckDBPyConnection, embedder: str) -> SentenceMatrix:
    """The sentence vectors of `embedder` in this warehouse, cached like `article_matrix`."""
    key = (_warehouse_key(con), embedder)
    fp = sentence_fingerprint(con, embedder)
    with _LOCK:
        cached = _SENTENCES.get(key)
        if cached is not None and cached.fingerprint == fp:
            _SENTENCES.move_to_end(key)
            return cached
    matrix = _load_sentences(con, embedder, fp)
    with _LOCK:
        _SENTENCES[key] = matrix
        _SENTENCES.move_to_end(key)
        while len(_SENTENCES) > MAX_CACHED:
            _SENTENCES.popitem(last=False)
    return matrix


def clear() -> None:
    """Forget every cached matrix (tests; a process that wants its memory back)."""
    with _LOCK:
        _CACHE.clear()
        _SENTENCES.clear()
