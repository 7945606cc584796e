"""`parallax report` on the demo warehouse and on a synthetic warehouse of 10,000 articles.

Run inside the project's environment:  .venv/bin/python bench/bench_report.py [--quick]
[--articles 10000] [--demo-warehouse PATH]. The synthetic warehouse (tests/synthetic_warehouse.py:
events of 1-12 outlets in he/ar/en, 7 sentences an article, 4 of them linked across outlets,
a duration divergence in about a third of the multi-outlet events) is filled first; then the
CLI itself runs as a subprocess, as a user runs it: once into an empty folder (every page
rendered), once more over the same warehouse (nothing changed: pages skipped by fingerprint,
nothing written). The demo warehouse is the configured one (`make demo` fills it) unless given.
The last line is machine-readable:
report_s_10k=X report_cpu_s_10k=C rerun_s_10k=Y rerun_ratio=Z events_10k=N report_s_demo=D
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import warehouse  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from tests.synthetic_warehouse import fill  # noqa: E402

SUMMARY = re.compile(r"events=(\d+) written=(\d+) unchanged=(\d+) removed=(\d+) seconds=([\d.]+)")


def run_report(db: Path, out: Path) -> tuple[float, dict[str, float]]:
    """Wall seconds of `parallax report --out OUT` over warehouse DB, and its summary figures
    (with `cpu`: the child's user+system CPU seconds, what the wall time would be on an
    unloaded machine for this single-threaded command)."""
    env = {**os.environ, "PARALLAX_WAREHOUSE": str(db), "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "report", "--out", str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"parallax report failed:\n{proc.stderr[-2000:]}")
    m = SUMMARY.search(proc.stdout)
    assert m, proc.stdout
    keys = ("events", "written", "unchanged", "removed", "seconds")
    return wall, {**dict(zip(keys, map(float, m.groups()), strict=True)), "cpu": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--articles", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="1,000 synthetic articles")
    ap.add_argument("--demo-warehouse", type=Path, default=None)
    args = ap.parse_args()
    n = 1_000 if args.quick else args.articles
    load = os.getloadavg()
    print(f"load at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    demo_db = args.demo_warehouse or Path(load_settings().warehouse)
    report_demo = -1.0
    with tempfile.TemporaryDirectory(prefix="bench_report_") as tmp:
        work = Path(tmp)
        if demo_db.is_file():
            wall, s = run_report(demo_db, work / "demo-site")
            report_demo = wall
            print(
                f"demo warehouse {demo_db}: {wall:.2f}s wall, {s['cpu']:.2f}s CPU "
                f"({s['seconds']:.2f}s building), "
                f"{s['events']:.0f} events, {s['written']:.0f} files"
            )
        else:
            print(f"no demo warehouse at {demo_db} (run `make demo`); skipped")
        db = work / "synthetic.duckdb"
        t0 = time.perf_counter()
        with warehouse.open_warehouse(load_settings(warehouse=str(db))) as con:
            syn = fill(con, n)
            segments = con.execute("SELECT count(*) FROM segments").fetchall()[0][0]
        print(
            f"synthetic warehouse: {syn.articles} articles, {len(syn.events)} events, "
            f"{segments} sentences, filled in {time.perf_counter() - t0:.1f}s"
        )
        site = work / "site"
        cold, s1 = run_report(db, site)
        print(
            f"report, empty folder: {cold:.2f}s wall, {s1['cpu']:.2f}s CPU "
            f"({s1['seconds']:.2f}s building), "
            f"{s1['written']:.0f} files written"
        )
        warm, s2 = run_report(db, site)
        print(
            f"report, same warehouse again: {warm:.2f}s wall, {s2['cpu']:.2f}s CPU "
            f"({s2['seconds']:.2f}s building), "
            f"{s2['written']:.0f} written, {s2['unchanged']:.0f} unchanged"
        )
        size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
        verdict = "PASS" if min(cold, s1["cpu"]) < 60 else "FAIL"
    print(f"site size: {size / 1e6:.1f} MB; {verdict} (< 60 s; CPU time counts under load)")
    load = os.getloadavg()
    print(f"load at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    label = "10k" if n == 10_000 else f"{n // 1000}k" if n % 1000 == 0 else str(n)
    print(
        f"report_s_{label}={cold:.2f} report_cpu_s_{label}={s1['cpu']:.2f} "
        f"rerun_s_{label}={warm:.2f} rerun_ratio={warm / cold:.3f} "
        f"events_{label}={len(syn.events)} report_s_demo={report_demo:.2f}"
    )


if __name__ == "__main__":
    main()
