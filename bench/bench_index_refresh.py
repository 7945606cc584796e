"""Search index upkeep: the refresh after adding 1% new sentences, at two index sizes.

For each size N (sentences): a warehouse of N/2 synthetic articles (2 sentences each, Zipf-drawn
Hebrew/Arabic/English words with proclitics, as in bench_search.py; English for half of the
he/ar sentences) is indexed from scratch, then N/100 new sentences are added and the index is
refreshed (normalising the new sentences into `search_docs`, then the incremental BM25 update),
then 200 more (the same batch at both sizes), a refresh with nothing new (what finding that out
costs), and ~0.7% of the sentences with other English (rewritten documents). With
`--fts`, the old way is timed too: fts's `create_fts_index` over all of search_docs (what every
refresh cost before layout 5), which grows with N where the incremental update follows the batch.

Prints the load average with the figures (the machine is shared); ratios are within one run.
Last line: `refresh_small_s=… refresh_big_s=… per_doc_ratio=… fixed_batch_update_ratio=…
update_over_full_big=…`: per_doc_ratio is the big size's refresh seconds per new sentence (1%
batches) over the small size's (1.0: cost proportional to the batch; N_big/N_small:
proportional to history); fixed_batch_update_ratio the index update for the same 200 sentences,
big over small (1.0: independent of history).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_search import PREFIX, WORDS, _vocab  # noqa: E402
from pipeline.records import article_id_for  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402

FIXED = 200  # sentences of the fixed-size batch


def _texts(rng: np.random.Generator, lang: str, count: int) -> list[str]:
    vocab = _vocab(lang)
    p = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    p /= p.sum()
    pre = PREFIX[lang]
    out = []
    for _ in range(count):
        words = rng.choice(len(vocab), size=rng.integers(8, 16), p=p)
        out.append(" ".join(pre[rng.integers(0, len(pre))] + vocab[w] for w in words))
    return out


def add_articles(con: object, start: int, n: int, seed: int) -> None:
    """n articles (2 sentences each) with ids from `start`, English for half the he/ar ones."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    langs = [("he", "ar", "en")[i % 3] for i in range(start, start + n)]
    ids = [article_id_for(f"http://bench/{i}") for i in range(start, start + n)]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    when = [t0 + timedelta(minutes=int(m)) for m in rng.integers(0, 525_600, n)]
    by_lang = {lang: iter(_texts(rng, lang, 2 * langs.count(lang))) for lang in WORDS}
    english = iter(_texts(rng, "en", 2 * n))
    segs: dict[str, list[object]] = {k: [] for k in ("article_id", "seg_no", "text", "lang")}
    trs: dict[str, list[object]] = {k: [] for k in ("article_id", "seg_no", "text_en")}
    for aid, lang in zip(ids, langs, strict=True):
        for seg in range(2):
            segs["article_id"].append(aid)
            segs["seg_no"].append(seg)
            segs["text"].append(next(by_lang[lang]))
            segs["lang"].append(lang)
            if lang != "en" and rng.random() < 0.5:
                trs["article_id"].append(aid)
                trs["seg_no"].append(seg)
                trs["text_en"].append(next(english))
    ts = pa.timestamp("us", tz="UTC")
    tables = {
        "articles": pa.table(
            {
                "article_id": ids,
                "outlet_id": [f"o{i % 12}" for i in range(n)],
                "url": [f"http://bench/{a}" for a in ids],
                "title": ids,
                "published_at": pa.array(when, type=ts),
                "text": ["-"] * n,
                "text_source": ["page"] * n,
                "text_sha256": ids,
                "lang": langs,
                "first_seen_at": pa.array(when, type=ts),
            }
        ),
        "segments": pa.table(
            {
                "article_id": segs["article_id"],
                "seg_no": pa.array(segs["seg_no"], type=pa.int32()),
                "para_no": pa.array([0] * len(segs["seg_no"]), type=pa.int32()),
                "text": segs["text"],
                "lang": segs["lang"],
            }
        ),
        "translations": pa.table(
            {
                "article_id": trs["article_id"],
                "seg_no": pa.array(trs["seg_no"], type=pa.int32()),
                "model_id": ["bench-mt"] * len(trs["seg_no"]),
                "text_en": trs["text_en"],
                "source_sha256": ["-"] * len(trs["seg_no"]),
                "created_at": pa.array([t0] * len(trs["seg_no"]), type=ts),
            }
        ),
    }
    for name, table in tables.items():
        cols = ", ".join(table.column_names)
        con.register("_in", table)  # type: ignore[attr-defined]
        con.execute(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM _in")  # type: ignore[attr-defined]
        con.unregister("_in")  # type: ignore[attr-defined]


def run_size(docs: int, work: Path, *, fts: bool) -> dict[str, float]:
    from pipeline import warehouse
    from pipeline.search.bm25_index import fts_pragma
    from pipeline.search.lexical import refresh_index

    settings = load_settings(warehouse=str(work / f"idx{docs}.duckdb"), runtime_dir=work / "var")
    out: dict[str, float] = {}
    n = docs // 2
    with warehouse.open_warehouse(settings) as con:
        add_articles(con, 0, n, seed=1)
        full = refresh_index(con)
        out["full_normalise_s"], out["full_index_s"] = full.normalise_s, full.rebuild_s
        out["postings"] = full.index.postings
        # 1% new sentences
        add_articles(con, n, n // 100, seed=2)
        new = refresh_index(con)
        assert not new.rebuilt and new.index.indexed == 2 * (n // 100), new
        out["new_docs"] = new.index.indexed
        out["new_normalise_s"], out["new_index_s"] = new.normalise_s, new.rebuild_s
        out["new_refresh_s"] = new.normalise_s + new.rebuild_s
        out["new_compacted"] = float(new.index.compacted)
        # the same 200 new sentences at every size: what grows with history is what remains
        add_articles(con, n + n // 100, FIXED // 2, seed=3)
        fixed = refresh_index(con)
        assert not fixed.rebuilt and fixed.index.indexed == FIXED, fixed
        out["fixed_refresh_s"] = fixed.normalise_s + fixed.rebuild_s
        out["fixed_index_s"] = fixed.rebuild_s
        # nothing changed: the scans that find that out (segments and translations hashed)
        noop = refresh_index(con)
        assert noop.changed == 0 and not noop.index.indexed, noop
        out["noop_refresh_s"] = noop.normalise_s + noop.rebuild_s
        # 1% of the sentences get other English (rewritten documents: old postings out)
        con.execute(
            "UPDATE translations SET text_en = text_en || ' revised', created_at = now() "
            "WHERE rowid % 50 = 0"
        )
        edit = refresh_index(con)
        assert not edit.rebuilt and edit.index.dropped == edit.index.indexed > 0, edit
        out["edit_docs"] = edit.index.indexed
        out["edit_refresh_s"] = edit.normalise_s + edit.rebuild_s
        out["edit_index_s"] = edit.rebuild_s
        if fts:  # the old way: the whole fts index again, on every refresh
            from pipeline.duckdb_ext import load_extension

            load_extension(con, "fts")
            t = time.perf_counter()
            con.execute(fts_pragma())
            out["fts_rebuild_s"] = time.perf_counter() - t
    return out


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,100000", help="two index sizes (sentences)")
    parser.add_argument("--fts", action="store_true", help="also time a full fts rebuild")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if len(sizes) != 2:
        parser.error("--sizes takes two sizes")
    print(f"load average at start: {_load_average()} ({os.cpu_count()} cores)", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for docs in sizes:
            r = run_size(docs, Path(tmp), fts=args.fts)
            results[docs] = r
            print(f"docs={docs} " + " ".join(f"{k}={v:.3f}" for k, v in r.items()), flush=True)
            print(
                f"  1% new: refresh {r['new_refresh_s']:.2f}s "
                f"({r['new_refresh_s'] / r['new_docs'] * 1000:.2f} ms/doc), index update "
                f"{r['new_index_s']:.2f}s = {r['new_index_s'] / r['full_index_s']:.3f} of a full "
                f"build ({r['full_index_s']:.2f}s)"
                + (
                    f"; fts rebuild {r['fts_rebuild_s']:.2f}s "
                    f"({r['fts_rebuild_s'] / r['new_refresh_s']:.1f}x the refresh)"
                    if "fts_rebuild_s" in r
                    else ""
                ),
                flush=True,
            )
            print(f"  load average: {_load_average()}", flush=True)
    small, big = (results[d] for d in sizes)
    per_doc = (big["new_refresh_s"] / big["new_docs"]) / (
        small["new_refresh_s"] / small["new_docs"]
    )
    fixed = big["fixed_index_s"] / small["fixed_index_s"]
    print(
        f"sizes {sizes[0]} -> {sizes[1]} ({sizes[1] / sizes[0]:.0f}x history): refresh per new "
        f"sentence {per_doc:.2f}x; index update share of a full build "
        f"{small['new_index_s'] / small['full_index_s']:.3f} -> "
        f"{big['new_index_s'] / big['full_index_s']:.3f}; the same {FIXED} new sentences: "
        f"index update {fixed:.2f}x, whole refresh "
        f"{big['fixed_refresh_s'] / small['fixed_refresh_s']:.2f}x; no-op refresh "
        f"{small['noop_refresh_s']:.2f}s -> {big['noop_refresh_s']:.2f}s"
    )
    print(
        f"refresh_small_s={small['new_refresh_s']:.3f} refresh_big_s={big['new_refresh_s']:.3f} "
        f"per_doc_ratio={per_doc:.2f} fixed_batch_update_ratio={fixed:.2f} update_over_full_big="
        f"{big['new_index_s'] / big['full_index_s']:.3f}"
    )


if __name__ == "__main__":
    main()
