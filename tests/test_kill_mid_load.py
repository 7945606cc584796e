"""SIGKILL at random points of a run, then a re-run: the warehouse equals an uninterrupted run's.

Each trial is a real child process (forked from this one, so it starts in milliseconds) running
`run.run_all` over the sample's saved feeds; it is killed with SIGKILL either at a fault point
(`pipeline.faults`: inside the N-th write transaction before its COMMIT, right after the N-th
COMMIT, or between two stages) or after a random delay. A second child then runs the pipeline
again over the same warehouse, and every table must hold exactly the rows of the reference run.

To keep 20+ trials cheap the runs start from a warehouse whose translation cache is warm (made
once by a run with the tiny Marian model in a separate process) and align without an embedder:
no trial loads torch, every load the pipeline does still happens (articles, rejects, segments,
translation chunks, events), and the children never touch a library the parent used.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import PROJECT_ROOT, Settings, load_settings
from tests.tables import dump

KILLS = 20
FEEDS = ("haboker", "al-masdar", "daily-ledger")  # one outlet per language, 18 articles
SEED = 13
KEEP_IN_BASE = {"translation_cache", "schema_version"}


def _settings(wh: Path, runtime: Path, models_dir: Path) -> Settings:
    return load_settings(
        warehouse=str(wh),
        runtime_dir=runtime,
        staging_dir=runtime / "staging",
        models_dir=models_dir,
        translate={"max_new_tokens": 8},
        align={"embedder": "none"},
    )


def _feeds(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name in FEEDS:
        target = dest / f"{name}.xml"
        shutil.copyfile(PROJECT_ROOT / "samples" / "site" / name / "feed.xml", target)
        out.append(target)
    return out


def _run(settings: Settings, feeds: list[Path]) -> None:
    from pipeline.ingest.outlets import load_outlets
    from pipeline.run import run_all

    run_all(load_outlets(PROJECT_ROOT / "config" / "outlets.toml"), settings, feeds=feeds)


def _child(target: Any, *, env: dict[str, str] | None = None) -> int:
    """Fork; the child runs `target()` and exits 0 (1 on an exception). Returns the pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's exit status is what the parent checks
        code = 1
        try:
            from pipeline import faults

            faults.reset()  # count this run's transactions, not the parent's earlier tests'
            os.environ.update(env or {})
            target()
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def _wait(pid: int, timeout: float = 300.0) -> int:
    """The child's wait status (killing it if it overruns)."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"child {pid} ran over {timeout}s")
        time.sleep(0.01)


_WARM = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.test_kill_mid_load import _run, _settings
wh, runtime, models = Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
_run(_settings(wh, runtime, models), sorted(Path(sys.argv[5]).glob("*.xml")))
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, tiny_models_dir: Path) -> tuple[Path, Path]:
    """A warehouse with the schema and a warm translation cache only; and the feeds folder."""
    root = tmp_path_factory.mktemp("kill")
    feeds = _feeds(root / "feeds")
    warm = root / "warm.duckdb"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _WARM,
            str(PROJECT_ROOT),
            str(warm),
            str(root / "var"),
            str(tiny_models_dir),
            str(feeds[0].parent),
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    def strip() -> None:
        from pipeline import warehouse

        with warehouse.open_warehouse(_settings(warm, root / "var", tiny_models_dir)) as con:
            tables = [
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
                ).fetchall()
            ]
            for table in tables:
                if table not in KEEP_IN_BASE:
                    con.execute(f"DELETE FROM {table}")
            con.execute("CHECKPOINT")

    assert _wait(_child(strip)) == 0
    return warm, feeds[0].parent


def test_sigkill_at_random_points_then_rerun_equals_a_clean_run(
    base: tuple[Path, Path], tmp_path: Path, tiny_models_dir: Path
) -> None:
    warm, feeds_dir = base
    # what every run imports, imported once here so each forked child starts at once
    import sklearn.feature_extraction  # noqa: F401  (align's lexical signal)
    import sklearn.feature_extraction.text  # noqa: F401

    import pipeline.align.events  # noqa: F401
    import pipeline.detect  # noqa: F401
    import pipeline.ingest.stage  # noqa: F401
    import pipeline.run  # noqa: F401
    import pipeline.segment  # noqa: F401
    import pipeline.translate  # noqa: F401
    from pipeline.detect.language import detect_language
    from pipeline.ingest.feeds import parse_feed
    from pipeline.records import Outlet

    detect_language("The minister announced the new plan on Tuesday evening.")
    parse_feed(b"<rss/>", Outlet("o", "o", "", ""))

    feeds = sorted(feeds_dir.glob("*.xml"))
    no_models = tmp_path / "no-models"  # a cache miss would leave rows pending: visible

    def fresh(name: str) -> Settings:
        """A warehouse copy with its own runtime folder (staging, locks), as a deployment has."""
        wh = tmp_path / f"{name}.duckdb"
        shutil.copyfile(warm, wh)
        return _settings(wh, tmp_path / f"var-{name}", no_models)

    def run_and_dump(settings: Settings, out: Path) -> Any:
        def go() -> None:
            from pipeline import faults

            t0 = time.perf_counter()
            _run(settings, feeds)
            seconds = time.perf_counter() - t0
            out.write_text(
                json.dumps({"tables": dump(settings), "hits": faults.hits(), "s": seconds}),
                encoding="utf-8",
            )

        return go

    ref_out = tmp_path / "ref.json"
    assert _wait(_child(run_and_dump(fresh("ref"), ref_out))) == 0
    ref = json.loads(ref_out.read_text(encoding="utf-8"))
    print(f"reference run {ref['s']:.1f}s hits={ref['hits']}", file=sys.stderr, flush=True)
    tables = ref["tables"]
    assert len(tables["articles"]) == 18 and len(tables["events"]) >= 3
    assert len(tables["translations"]) == len(tables["segments"]) > 18

    commits = ref["hits"]["transaction.before_commit"]
    stages = sorted(k.removeprefix("run.before.") for k in ref["hits"] if k.startswith("run."))
    rng = random.Random(SEED)
    kills: list[str] = []
    for trial in range(KILLS + 6):
        if len(kills) == KILLS:
            break
        settings = fresh(f"t{trial}")
        kind = ["before_commit", "after_commit", "between_stages", "timer"][trial % 4]
        t_trial = time.perf_counter()
        if kind == "timer":
            pid = _child(lambda s=settings: _run(s, feeds))
            time.sleep(rng.uniform(0.05, 0.7) * ref["s"])
            os.kill(pid, signal.SIGKILL)
            where = "timer"
        else:
            if kind == "between_stages":
                where = f"run.before.{rng.choice(stages)}=kill"
            else:
                where = f"transaction.{kind}@{rng.randint(1, commits)}=kill"
            pid = _child(lambda s=settings: _run(s, feeds), env={"PARALLAX_FAULTS": where})
        status = _wait(pid)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            kills.append(where)
        else:  # only a timer may miss, when the run ended first
            assert kind == "timer" and os.WEXITSTATUS(status) == 0, (where, status)
        out = tmp_path / f"t{trial}.json"
        assert _wait(_child(run_and_dump(settings, out))) == 0, where
        print(f"trial {trial} {where}: {time.perf_counter() - t_trial:.1f}s", file=sys.stderr)
        again = json.loads(out.read_text(encoding="utf-8"))["tables"]
        assert again.keys() == tables.keys()
        for table, rows in tables.items():
            assert again[table] == rows, (where, table, len(again[table]), len(rows))
    print(f"\nkill mid-load: {len(kills)} SIGKILL trials over {commits} transactions: {kills}")
    assert len(kills) == KILLS
