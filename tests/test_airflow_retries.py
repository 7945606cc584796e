"""Airflow retries leave exactly the rows of a clean run.

`parallax_ingest` under dag.test() in subprocesses (a private AIRFLOW_HOME), with faults armed
through PARALLAX_FAULTS (`pipeline.faults`): one mapped `ingest_outlet` task raises on its first
try and succeeds on its retry; then, into a second warehouse, the `load` task is SIGKILLed right
after its transaction committed and before it could report success, and the DAG is run again.
Both warehouses must hold the same rows as each other, with nothing lost or doubled.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_dags import DAGS, airflow_env, sample_outlets_toml, stages_ready

_RUN = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from pipeline.airflow_setup import ensure_pools
from pipeline.settings import load_settings
from tests.tables import dump

ensure_pools()
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dr = bag.dags["parallax_ingest"].test()
tries = {f"{ti.task_id}[{ti.map_index}]": [str(ti.state), ti.try_number] for ti in dr.get_task_instances()}
print("RESULT " + json.dumps({"state": str(dr.state), "tries": tries, "tables": dump(load_settings())}))
"""


def _dag_test(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _RUN, str(DAGS)],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _result(proc: subprocess.CompletedProcess[str]) -> Any:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (proc.returncode, proc.stderr[-6000:])
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.skipif(not stages_ready(), reason="stage packages or samples not written yet")
def test_a_retried_ingest_and_a_load_killed_after_commit_give_a_clean_runs_rows(
    tmp_path: Path, sample_server: str
) -> None:
    config = tmp_path / "parallax.toml"
    config.write_text("[airflow]\nretry_delay_s = 1\n", encoding="utf-8")
    env = airflow_env(
        tmp_path / "airflow",
        PARALLAX_OUTLETS=str(sample_outlets_toml(sample_server, tmp_path / "outlets.toml")),
        PARALLAX_RUNTIME_DIR=str(tmp_path / "var"),
        PARALLAX_CONFIG=str(config),
    )
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run(
        [airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300
    )

    # 1. one mapped ingest task fails on its first try, succeeds on its retry
    first = _result(
        _dag_test(
            env,
            PARALLAX_WAREHOUSE=str(tmp_path / "a.duckdb"),
            PARALLAX_FAULTS="ingest_outlet.haboker.try1=raise",
        )
    )
    assert first["state"].endswith("success"), first["tries"]
    mapped = {k: v for k, v in first["tries"].items() if k.startswith("ingest_outlet[")}
    assert len(mapped) == 6
    assert sorted(t for _, t in mapped.values()) == [1, 1, 1, 1, 1, 2]
    assert {s for s, _ in mapped.values()} == {"success"}
    tables = first["tables"]
    assert len(tables["articles"]) >= 30 and len(tables["outlets"]) == 6
    assert any("'haboker'" in r for r in tables["articles"])  # the retried outlet's articles

    # 2. the load commits, then its process is killed before it reports success
    wh = str(tmp_path / "b.duckdb")
    killed = _dag_test(
        env, PARALLAX_WAREHOUSE=wh, PARALLAX_FAULTS="ingest.load.committed.try1=kill"
    )
    if killed.returncode == -signal.SIGKILL:  # dag.test ran the task in its own process
        again = _result(_dag_test(env, PARALLAX_WAREHOUSE=wh))  # the run is done again
    else:  # the task ran in a child: Airflow saw it die and retried it
        again = _result(killed)
        assert again["tries"]["load[-1]"] == ["success", 2], again["tries"]
    assert again["state"].endswith("success")
    assert again["tables"] == tables
