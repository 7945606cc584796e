"""Concurrent loads into a DuckLake on PostgreSQL against one writer into a DuckDB file.

Run inside the project's environment:  .venv/bin/python bench/bench_scale.py [--quick]
[--articles 1200] [--batch 50] [--segments 4]. Needs Debian's postgresql package (a throwaway
cluster is started on 127.0.0.1 in a temporary directory, see pipeline/devservices.py).

N synthetic articles (a third each Hebrew, Arabic, English; `--segments` segments each; every
Hebrew and Arabic segment with a translation) are split into batches of `--batch` articles, the
size of one load task's input. Each writer is its own process and loads its share of batches the
way the DAGs' load tasks do (articles, then segments, then translations, one transaction each,
through `pipeline.warehouse`), into a fresh DuckLake (new catalog database, new data path) with
1, 2 and 4 writers, and into a fresh DuckDB file with 1 writer. Every writer starts with
an overlapping batch (the batch before its own share, as two ingest runs of the same outlets
would), so natural keys are written concurrently. After each run the row counts must be exact:
`lost_commits` counts batches a writer committed whose rows are missing, `duplicate_rows` rows
beyond one per natural key. The last line is machine-readable:
ducklake_speedup_4w=X lost_commits=0 duplicate_rows=0
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.records import Article, Segment, Translation, sha256_text  # noqa: E402

LANGS = ("he", "ar", "en")
WORDS = {
    "he": [
        "הממשלה",
        "הודיעה",
        "היום",
        "על",
        "תוכנית",
        "חדשה",
        "לשיקום",
        "הצפון",
        "אחרי",
        "חודשים",
        "של",
        "לחימה",
    ],
    "ar": [
        "أعلنت",
        "الحكومة",
        "اليوم",
        "عن",
        "خطة",
        "جديدة",
        "لإعادة",
        "إعمار",
        "الشمال",
        "بعد",
        "أشهر",
        "من",
        "القتال",
    ],
    "en": [
        "the",
        "government",
        "announced",
        "today",
        "a",
        "new",
        "plan",
        "to",
        "rebuild",
        "the",
        "north",
        "after",
        "months",
    ],
}
KEYS = {
    "articles": "article_id",
    "article_versions": "article_id, version",
    "segments": "article_id, seg_no",
    "translations": "article_id, seg_no, model_id",
}


@dataclass(frozen=True)
class Batch:
    articles: list[Article]
    segments: list[Segment]
    translations: list[Translation]


def make_batches(n_articles: int, batch: int, segments: int) -> list[Batch]:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    out: list[Batch] = []
    for b0 in range(0, n_articles, batch):
        arts, segs, trs = [], [], []
        for n in range(b0, min(b0 + batch, n_articles)):
            lang = LANGS[n % 3]
            words = WORDS[lang]
            sents = [
                " ".join(words[(n + k + i) % len(words)] for i in range(9)) + f" {n}-{k}."
                for k in range(segments)
            ]
            text = " ".join(sents)
            aid = f"{n:08x}"
            arts.append(
                Article(
                    article_id=aid,
                    outlet_id=f"outlet{n % 50:03d}",
                    url=f"http://127.0.0.1/{lang}/{n}",
                    title=sents[0],
                    published_at=start + timedelta(minutes=n),
                    text=text,
                    text_source="page",
                    text_sha256=sha256_text(text),
                    lang=lang,
                    lang_confidence=0.99,
                    lang_method="script",
                )
            )
            for k, s in enumerate(sents):
                segs.append(Segment(aid, k, 0, s, lang))
                if lang != "en":
                    trs.append(
                        Translation(
                            aid, k, f"opus-mt-{lang}-en", f"english {n}-{k}", sha256_text(s)
                        )
                    )
        out.append(Batch(arts, segs, trs))
    return out


def writer(warehouse: str, data_path: str, runtime: str, batches: list[Batch], go: object) -> int:
    """One writer process: open the warehouse, wait for the start, load every batch."""
    from pipeline import warehouse as wh
    from pipeline.settings import load_settings

    settings = load_settings(
        warehouse=warehouse, warehouse_data_path=data_path, runtime_dir=Path(runtime)
    )
    with wh.open_warehouse(settings) as con:
        go.wait()  # type: ignore[attr-defined]
        done = 0
        for b in batches:
            wh.load_articles(con, b.articles)
            wh.load_segments(con, b.segments)
            wh.load_translations(con, b.translations)
            done += 1
    return done


def _run_writer(args: tuple[str, str, str, list[Batch], object]) -> int:
    return writer(*args)


def run(
    warehouse: str, data_path: str, runtime: str, batches: list[Batch], writers: int
) -> tuple[float, int, dict[str, tuple[int, int]], int]:
    """Load `batches` with `writers` processes: seconds, batch loads committed, (rows, keys) per
    table, and batches with a row missing (a commit lost)."""
    from pipeline import warehouse as wh
    from pipeline.settings import load_settings

    settings = load_settings(
        warehouse=warehouse, warehouse_data_path=data_path, runtime_dir=Path(runtime)
    )
    with wh.open_warehouse(settings):
        pass  # the schema, before the writers (as `airflow db migrate` before the workers)
    shares = [batches[i::writers] for i in range(writers)]
    if writers > 1:  # each writer first re-loads a batch of another's share: same keys at once
        shares = [[shares[(i + 1) % writers][0], *share] for i, share in enumerate(shares)]
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        go = manager.Event()
        with ctx.Pool(writers) as pool:
            pending = pool.map_async(
                _run_writer, [(warehouse, data_path, runtime, s, go) for s in shares]
            )
            time.sleep(3.0 + writers)  # every writer connected and waiting
            t0 = time.perf_counter()
            go.set()
            committed = sum(pending.get(timeout=3600))
            seconds = time.perf_counter() - t0
    with wh.open_warehouse(settings, read_only=True) as con:
        counts = {
            t: tuple(con.execute(f"SELECT count(*), count(DISTINCT ({k})) FROM {t}").fetchall()[0])
            for t, k in KEYS.items()
        }
        present = {
            (r[0], r[1])
            for r in con.execute(
                "SELECT s.article_id, s.seg_no FROM segments s JOIN articles USING (article_id)"
            ).fetchall()
        }
        translated = {
            (r[0], r[1])
            for r in con.execute("SELECT article_id, seg_no FROM translations").fetchall()
        }
    lost = sum(
        1
        for b in batches
        if any((s.article_id, s.seg_no) not in present for s in b.segments)
        or any((t.article_id, t.seg_no) not in translated for t in b.translations)
    )
    return seconds, committed, counts, lost  # type: ignore[return-value]


def compaction(warehouse: str, data_path: str, runtime: str, loads: int) -> None:
    """Snapshots and files a batch load leaves behind, and what the maintenance DAG's
    compaction and snapshot expiry make of them (docs/scale.md scales these up)."""
    from pipeline import warehouse as wh
    from pipeline import warehouse_backends as backends
    from pipeline.settings import load_settings

    settings = load_settings(
        warehouse=warehouse, warehouse_data_path=data_path, runtime_dir=Path(runtime)
    )
    with wh.open_warehouse(settings) as con:
        snaps = con.execute(
            f"SELECT count(*) FROM ducklake_snapshots('{backends.LAKE_ALIAS}')"
        ).fetchall()[0][0]
        t0 = time.perf_counter()
        stats = backends.lake_maintenance(con, older_than_days=0)
        secs = time.perf_counter() - t0
    print(
        f"  lake after {loads} batch loads: {snaps} snapshots, {stats['files_before']} data "
        f"files + {stats['delete_files_before']} delete files ({snaps / loads:.1f} snapshots and "
        f"{(stats['files_before'] + stats['delete_files_before']) / loads:.1f} files per load); "
        f"maintenance {secs:.1f} s -> {stats['files_after']} data files, "
        f"{stats['delete_files_after']} delete files, {stats['expired_snapshots']} snapshots expired"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--articles", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--segments", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="240 articles in batches of 20")
    args = ap.parse_args()
    if args.quick:
        args.articles, args.batch = 240, 20
    from pipeline.devservices import postgres_cluster

    batches = make_batches(args.articles, args.batch, args.segments)
    n_art = sum(len(b.articles) for b in batches)
    expected = {
        "articles": n_art,
        "article_versions": n_art,
        "segments": sum(len(b.segments) for b in batches),
        "translations": sum(len(b.translations) for b in batches),
    }
    print(
        f"{n_art} articles in {len(batches)} batches of {args.batch}: "
        f"{expected['segments']} segments, {expected['translations']} translations; "
        f"{os.cpu_count()} CPUs"
    )
    tmp = Path(tempfile.mkdtemp(prefix="parallax-bench-scale-"))
    results: dict[str, float] = {}
    lost = dup = 0
    try:
        with postgres_cluster() as pg:
            runs = [("duckdb", 1), ("ducklake", 1), ("ducklake", 2), ("ducklake", 4)]
            for kind, writers in runs:
                name = f"{kind}_{writers}w"
                if kind == "duckdb":
                    target, data = str(tmp / f"{name}.duckdb"), ""
                else:
                    target = "ducklake:postgres:" + pg.create_database(
                        f"lake_{uuid.uuid4().hex[:8]}"
                    )
                    data = str(tmp / f"{name}-data")
                seconds, committed, counts, run_lost = run(
                    target, data, str(tmp / "var"), batches, writers
                )
                results[name] = seconds
                run_dup = sum(rows - keys for rows, keys in counts.values())
                missing = sum(max(0, expected[t] - counts[t][1]) for t in expected)
                lost += run_lost
                dup += run_dup
                ok = all(counts[t] == (expected[t], expected[t]) for t in expected)
                print(
                    f"{name:12s} {seconds:7.2f} s  {n_art / seconds:7.1f} articles/s  "
                    f"{committed} batch loads committed  rows exact: {ok}  "
                    f"duplicates {run_dup}  missing {missing}"
                )
                if name == "ducklake_1w":
                    compaction(target, data, str(tmp / "var"), committed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    speedup2 = results["ducklake_1w"] / results["ducklake_2w"]
    speedup4 = results["ducklake_1w"] / results["ducklake_4w"]
    print(
        f"ducklake_1w vs duckdb_1w: {results['duckdb_1w'] / results['ducklake_1w']:.2f}x; "
        f"2 writers {speedup2:.2f}x, 4 writers {speedup4:.2f}x over 1 DuckLake writer"
    )
    print(f"ducklake_speedup_4w={speedup4:.2f} lost_commits={lost} duplicate_rows={dup}")


if __name__ == "__main__":
    main()
