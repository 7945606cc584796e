"""Article vectors cached in the warehouse (`article_vectors`), keyed by article and embedder.

Embedding is the slowest part of aligning, and an article's vector only changes when the text
it was computed from changes. The cached `text_sha256` is the hash of exactly the text that was
embedded (title + lead, see `article_embedding_text`), so an edited title or lead is re-embedded
and an edit further down the article is not. Vectors travel as Arrow lists, not Python floats.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pipeline.records import sha256_text

if TYPE_CHECKING:
    import duckdb

    from pipeline.align.vectors import Embedder
    from pipeline.records import Article

log = logging.getLogger(__name__)

_TEMP = "_parallax_vectors_in"
EMBED_BATCH = 64  # texts per embed call: bounded memory, similar lengths together


def load_vectors(
    con: duckdb.DuckDBPyConnection, embedder_name: str, article_ids: Sequence[str]
) -> dict[str, tuple[str, np.ndarray]]:
    """Cached (text_sha256, vector) per article id; ids without a cached vector are absent."""
    if not article_ids:
        return {}
    import pyarrow.compute as pc

    from pipeline.warehouse import ids_in

    # the id list alone, so the index serves it; the embedder is filtered here, not in the scan
    with ids_in(con, "article_id", list(article_ids)) as where:
        table = con.execute(
            f"SELECT article_id, embedder, text_sha256, vector FROM article_vectors WHERE {where}"
        ).to_arrow_table()
    table = table.filter(pc.equal(table.column("embedder"), embedder_name))
    ids = table.column("article_id").to_pylist()
    hashes = table.column("text_sha256").to_pylist()
    out: dict[str, tuple[str, np.ndarray]] = {}
    for aid, digest, vec in zip(ids, hashes, table.column("vector").to_pylist(), strict=True):
        out[aid] = (digest, np.asarray(vec, dtype=np.float32))
    return out


def store_vectors(
    con: duckdb.DuckDBPyConnection,
    embedder_name: str,
    rows: Sequence[tuple[str, str, np.ndarray]],
) -> None:
    """Upsert (article_id, text_sha256, vector) rows for one embedder, in one transaction."""
    if not rows:
        return
    import pyarrow as pa

    from pipeline.warehouse import merge_from, transaction

    table = pa.table(
        {
            "article_id": [r[0] for r in rows],
            "embedder": [embedder_name] * len(rows),
            "text_sha256": [r[1] for r in rows],
            "vector": pa.array(
                [np.asarray(r[2], dtype=np.float32) for r in rows], type=pa.list_(pa.float32())
            ),
        }
    )
    con.register(_TEMP, table)
    try:
        with transaction(con):
            cols = ["article_id", "embedder", "text_sha256", "vector"]
            merge_from(con, "article_vectors", cols, f"SELECT {', '.join(cols)} FROM {_TEMP}")
    finally:
        con.unregister(_TEMP)


def embed_articles(
    articles: Sequence[Article],
    embedder: Embedder,
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    store: bool = True,
) -> dict[str, np.ndarray]:
    """Vector per article_id; only articles with no cached vector, or whose embedded text
    changed, are embedded (and stored when a connection is given and `store` is true;
    evaluation reads the cache without writing to a warehouse it only scores)."""
    from pipeline.align.vectors import article_embedding_text

    texts = {a.article_id: article_embedding_text(a) for a in articles}
    digests = {aid: sha256_text(t) for aid, t in texts.items()}
    cached = load_vectors(con, embedder.name, list(texts)) if con is not None else {}
    out: dict[str, np.ndarray] = {}
    todo: list[str] = []
    for aid in texts:
        hit = cached.get(aid)
        if hit is not None and hit[0] == digests[aid] and hit[1].shape == (embedder.dim,):
            out[aid] = hit[1]
        elif texts[aid]:
            todo.append(aid)
    if todo:
        # Sorted by length so a batch holds texts of similar size; results keyed by id.
        todo.sort(key=lambda aid: (len(texts[aid]), aid))
        vectors = np.concatenate(
            [
                embedder.embed([texts[aid] for aid in todo[i : i + EMBED_BATCH]])
                for i in range(0, len(todo), EMBED_BATCH)
            ]
        )
        if vectors.shape != (len(todo), embedder.dim):
            raise ValueError(
                f"embedder {embedder.name} returned shape {vectors.shape}, "
                f"expected {(len(todo), embedder.dim)}"
            )
        fresh = [(aid, digests[aid], vectors[i]) for i, aid in enumerate(todo)]
        out.update({aid: vec for aid, _, vec in fresh})
        if con is not None and store:
            store_vectors(con, embedder.name, fresh)
    log.info(
        "align: %d vectors (%d cached, %d embedded with %s)",
        len(out),
        len(out) - len(todo),
        len(todo),
        embedder.name,
    )
    return out
