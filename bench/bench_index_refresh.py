"""Search index upkeep: the refresh after adding 1% new sentences, at two index sizes.

For each size N (sentences): a warehouse of N/2 synthetic articles (2 sentences each, Zipf-drawn
Hebrew/Arabic/English words with proclitics, as in bench_search.py; English for half of the
he/ar sentences) is indexed from scratch, then N/100 new sentences are added and the index is
refreshed (normalising the new sentences into `search_docs`, then the incremental BM25 update),
then 200 more (the same batch at both sizes), a refresh with nothing new (what finding that out
costs), and ~0.7% of the sentences with other English (rewritten documents). With
`--fts`, the old way is timed too: fts's `create_fts_index` over all of search_docs (what every
refresh cost before layout 5), which grows with N where the incremental update follows the batch;
and our BM25 query (tf, df, length at query time) against layout 4's (precomputed weights over
fts's tables) on the same documents: p50 of 40 queries (best of 3), and that the scores are the
same.

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

from bench.bench_search import PREFIX, WORDS, _load_average, _vocab  # noqa: E402
from pipeline.records import article_id_for  # noqa: E402
from pipeline.search.bm25_index import COMPACT_FRACTION  # noqa: E402
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
        # the re-sort an update runs once the tail passes COMPACT_FRACTION of postings:
        # amortised over the new postings that trigger it
        from pipeline.search.bm25_index import compact

        t = time.perf_counter()
        rows = compact(con)
        out["compact_s"] = time.perf_counter() - t
        out["compact_rows"] = rows  # it runs after COMPACT_FRACTION * rows new postings,
        # i.e. after about COMPACT_FRACTION * docs new sentences
        out["compact_per_new_doc_ms"] = out["compact_s"] / (COMPACT_FRACTION * docs) * 1000
        if fts:  # the old way: the whole fts index again, on every refresh
            from pipeline.duckdb_ext import load_extension

            load_extension(con, "fts")
            t = time.perf_counter()
            con.execute(fts_pragma())
            out["fts_rebuild_s"] = time.perf_counter() - t
            out.update(_query_speed(con))
    return out


# Layout 4 (before this index): BM25 weights precomputed per posting from fts's tables, and its
# query. Built here only to time our query against it on the same documents, in the same run.
_OLD_TABLES = """
CREATE OR REPLACE TABLE {f}.postings AS
WITH tf AS (SELECT termid, docid, count(*) AS tf FROM {f}.terms GROUP BY termid, docid)
SELECT tf.termid, tf.docid,
       ln((st.num_docs - d.df + 0.5) / (d.df + 0.5) + 1)
       * (tf.tf * 2.2) / (tf.tf + 1.2 * (0.25 + 0.75 * dd.len / st.avgdl)) AS weight
FROM tf JOIN {f}.dict d USING (termid) JOIN {f}.docs dd USING (docid) CROSS JOIN {f}.stats st
ORDER BY tf.termid, tf.docid;
CREATE OR REPLACE TABLE {f}.docmeta AS
SELECT dd.docid, sd.article_id, sd.seg_no, a.lang, a.outlet_id, a.published_at
FROM {f}.docs dd JOIN search_docs sd ON sd.doc_id = dd.name
JOIN articles a ON a.article_id = sd.article_id ORDER BY dd.docid;
"""
_OLD_QUERY = """
WITH tok AS (SELECT DISTINCT lower(unnest(?::VARCHAR[])) AS w),
q AS (SELECT DISTINCT stem(w, 'porter') AS t FROM tok
      WHERE w <> '' AND w NOT IN (SELECT sw FROM {f}.stopwords)),
qt AS (SELECT d.termid FROM {f}.dict d JOIN q ON d.term = q.t),
sc AS (SELECT p.docid, sum(p.weight) AS score FROM {f}.postings p
       WHERE p.termid IN (SELECT termid FROM qt) GROUP BY p.docid
       HAVING NOT ? OR count(*) = (SELECT count(*) FROM q))
SELECT m.article_id, arg_max(m.seg_no, sc.score) AS seg_no, max(sc.score) AS score
FROM sc JOIN {f}.docmeta m USING (docid) GROUP BY m.article_id
ORDER BY score DESC, m.article_id LIMIT 100
"""


def _query_speed(con: object) -> dict[str, float]:
    """p50 ms (best of 3 per query) of our BM25 query and of layout 4's over the same documents
    (interleaved, so a change of the machine's load hits both), and whether they return the
    same articles and scores (to 1e-9)."""
    import math
    import statistics

    from bench.bench_search import queries
    from pipeline.search.filters import SearchFilters
    from pipeline.search.index_store import FTS_SCHEMA
    from pipeline.search.lexical import _article_scores
    from pipeline.search.normalise import query_terms

    con.execute(_OLD_TABLES.format(f=FTS_SCHEMA))  # type: ignore[attr-defined]
    con.execute("CHECKPOINT")  # type: ignore[attr-defined]  # both stored alike (compressed)
    qs = [query_terms(q) for q in queries()]
    ours, old = [1e9] * len(qs), [1e9] * len(qs)
    same = True
    for _ in range(3):  # best of 3 per query, the two interleaved: the machine is shared
        for i, terms in enumerate(qs):
            t = time.perf_counter()
            new_rows = _article_scores(con, terms, SearchFilters(), conjunctive=False, limit=100)  # type: ignore[arg-type]
            ours[i] = min(ours[i], (time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            old_rows = con.execute(_OLD_QUERY.format(f=FTS_SCHEMA), [terms, False]).fetchall()  # type: ignore[attr-defined]
            old[i] = min(old[i], (time.perf_counter() - t) * 1000)
            # equal scores: the same articles (a tie at the cut may order differently)
            a = {r[0]: r[2] for r in new_rows}
            b = {r[0]: r[2] for r in old_rows}
            top = [k for k in a if k in b]
            same &= len(top) >= 95 or a.keys() == b.keys()
            same &= all(math.isclose(a[k], b[k], rel_tol=1e-9) for k in top)
    return {
        "bm25_p50_ms": statistics.median(ours),
        "bm25_layout4_p50_ms": statistics.median(old),
        "bm25_same_as_layout4": float(same),
    }


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
                    f"({r['fts_rebuild_s'] / r['new_refresh_s']:.1f}x the refresh); BM25 query "
                    f"p50 {r['bm25_p50_ms']:.1f} ms, layout 4's {r['bm25_layout4_p50_ms']:.1f} "
                    f"ms, same results: {bool(r['bm25_same_as_layout4'])}"
                    if "fts_rebuild_s" in r
                    else ""
                ),
                flush=True,
            )
            print(
                f"  re-sort of postings {r['compact_s']:.2f}s, every {COMPACT_FRACTION:.0%} of "
                f"new postings: {r['compact_per_new_doc_ms']:.3f} ms per new sentence amortised",
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
