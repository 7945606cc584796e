"""scripts/airflow-celery.sh end to end: the three DAGs on Airflow's CeleryExecutor (PostgreSQL
metadata, Redis broker, two Celery workers) against a DuckLake warehouse on PostgreSQL.

Two ingest runs at once; translation runs on the `translate` queue, and the task instance must
say the translate-only worker ran it. Afterwards the lake holds the same rows as a DuckDB file
filled by one single-process `parallax run` over the same sample (no duplicate, no lost commit),
and once the script is stopped with SIGTERM, no process it started is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.devservices import free_port, services_available
from pipeline.settings import PROJECT_ROOT, load_settings
from tests.test_dags import DAG_IDS, airflow_env, sample_outlets_toml, stages_ready

pytestmark = [
    pytest.mark.scale,
    pytest.mark.timeout(2400),
    pytest.mark.slow,
    pytest.mark.skipif(not stages_ready(), reason="stage packages or samples not written yet"),
    pytest.mark.skipif(not services_available(), reason="postgresql / redis-server not installed"),
]

SCRIPT = PROJECT_ROOT / "scripts" / "airflow-celery.sh"
WAIT_S = 1500.0  # minutes on an idle 2-core machine; far more when it is shared


def _descendants_alive(pgid: int) -> list[int]:
    import psutil

    alive = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid:
                alive.append(proc.pid)
    return alive


def _pids_under(path: Path) -> list[int]:
    """Processes whose command line mentions `path` (our PostgreSQL, Redis, workers)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(path) in part for part in proc.info["cmdline"] or []):
                found.append(proc.pid)
    return found


def test_celery_stack_matches_single_process_run(
    tmp_path: Path, sample_server: str, tiny_models_dir: Path
) -> None:
    import httpx

    from pipeline import warehouse
    from pipeline.ingest.outlets import load_outlets
    from pipeline.run import run_all
    from tests.tables import table_rows
    from tests.test_warehouse_lake import same_rows

    # PostgreSQL runs as `postgres` when we are root: its directory must be reachable by it
    state = Path(tempfile.mkdtemp(prefix="parallax-scale-"))
    config = tmp_path / "parallax.toml"
    config.write_text("[translate]\nmax_new_tokens = 8\n", encoding="utf-8")
    # one outlet per language keeps the run short on a 2-core machine
    outlets_toml = _subset(
        sample_outlets_toml(sample_server, tmp_path / "all-outlets.toml"),
        {"haboker", "al-masdar", "daily-ledger"},
        tmp_path / "outlets.toml",
    )
    port = free_port()
    env = airflow_env(
        state / "airflow",
        PARALLAX_VENV=str(Path(sys.executable).parent.parent),
        PARALLAX_SCALE_DIR=str(state),
        PARALLAX_AIRFLOW_PORT=str(port),
        PARALLAX_PG_PORT=str(free_port()),
        PARALLAX_REDIS_PORT=str(free_port()),
        PARALLAX_WORKER_LOG_PORT=str(free_port()),
        PARALLAX_TRANSLATE_LOG_PORT=str(free_port()),
        PARALLAX_OUTLETS=str(outlets_toml),
        PARALLAX_MODELS_DIR=str(tiny_models_dir),
        PARALLAX_CONFIG=str(config),
        PARALLAX_INGEST_SCHEDULE="none",
        PARALLAX_MAINTENANCE_SCHEDULE="none",  # tested on its own in test_warehouse_lake
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT="120",  # CI machines are shared
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
        PARALLAX_AIRFLOW_STOP_GRACE_S="15",
    )
    log = (tmp_path / "script.log").open("wb")
    script = subprocess.Popen(
        ["bash", str(SCRIPT)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def tail() -> str:
        parts = [(tmp_path / "script.log").read_text(errors="replace")[-3000:]]
        for p in sorted((state / "logs").glob("*.out")):
            parts.append(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}")
        return "\n".join(parts)

    def wait(what: str, check: Any, deadline: float) -> Any:
        while time.monotonic() < deadline:
            assert script.poll() is None, f"the script exited early\n{tail()}"
            try:
                got = check()
            except Exception:  # still starting
                got = None
            if got:
                return got
            time.sleep(1)
        raise AssertionError(f"timed out waiting for {what}\n{tail()}")

    try:
        deadline = time.monotonic() + WAIT_S
        with httpx.Client(base_url=base, timeout=60) as client:  # a busy api-server is slow
            wait("the UI address", lambda: base in (tmp_path / "script.log").read_text(), deadline)
            token = wait(
                "a token", lambda: client.get("/auth/token").json().get("access_token"), deadline
            )
            client.headers["Authorization"] = f"Bearer {token}"
            wait(
                "the DAGs",
                lambda: all(client.get(f"/api/v2/dags/{d}").status_code == 200 for d in DAG_IDS),
                deadline,
            )
            pools = client.get("/api/v2/pools/parallax_warehouse").json()
            assert pools["slots"] == 4  # a DuckLake takes several writers
            for dag_id in DAG_IDS:
                client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
            for _ in range(2):  # two ingest runs at once: their loads write the lake together
                client.post(
                    "/api/v2/dags/parallax_ingest/dagRuns", json={"logical_date": None}
                ).raise_for_status()

            def runs(dag_id: str) -> list[dict[str, Any]]:
                got = client.get(f"/api/v2/dags/{dag_id}/dagRuns").json()["dag_runs"]
                return list(got)

            def all_done() -> bool:
                states = {d: [r["state"] for r in runs(d)] for d in DAG_IDS}
                assert not any("failed" in s for s in states.values()), states
                return (
                    all(states[d] and set(states[d]) == {"success"} for d in DAG_IDS)
                    and len(states["parallax_ingest"]) == 2
                )

            wait("all runs to succeed", all_done, deadline)
            time.sleep(3)  # the second load's asset event may queue one more translate/align
            wait("asset-triggered runs to settle", all_done, deadline)
            hosts: dict[str, set[str]] = {}
            queues: dict[str, set[str]] = {}
            for dag_id in DAG_IDS:
                for run in runs(dag_id):
                    tis = client.get(
                        f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances"
                    ).json()["task_instances"]
                    for ti in tis:
                        key = f"{dag_id}.{ti['task_id']}"
                        hosts.setdefault(key, set()).add(ti["hostname"])
                        queues.setdefault(key, set()).add(ti["queue"])
        assert hosts["parallax_translate.translate"] == {"worker-translate"}, hosts
        assert queues["parallax_translate.translate"] == {"translate"}
        others = set().union(*(h for k, h in hosts.items() if k != "parallax_translate.translate"))
        assert others == {"worker-default"}, hosts
    except BaseException:
        _stop(script)
        log.close()
        shutil.rmtree(state, ignore_errors=True)
        raise
    _stop(script)
    log.close()
    try:
        time.sleep(1)
        assert _descendants_alive(script.pid) == [], "processes of the script's group left"
        assert _pids_under(state) == [], f"processes left: {_pids_under(state)}\n{tail()}"
        assert "parallax: stopped" in (tmp_path / "script.log").read_text()

        # The lake, read after the stack is gone (its catalog needs PostgreSQL: start it again).
        single = load_settings(
            warehouse=str(tmp_path / "single.duckdb"),
            runtime_dir=tmp_path / "single-var",
            models_dir=tiny_models_dir,
            translate={"max_new_tokens": 8},
        )
        run_all(load_outlets(outlets_toml), single)
        with warehouse.open_warehouse(single, read_only=True) as con:
            expected = table_rows(con)
        pg_port = env["PARALLAX_PG_PORT"]
        ctl = _pg_ctl(state, pg_port, "start")
        try:
            lake = load_settings(
                warehouse=f"ducklake:postgres:dbname=parallax_lake host=127.0.0.1 port={pg_port} "
                "user=postgres",
                warehouse_data_path=str(state / "lake-data"),
                runtime_dir=tmp_path / "reader",
            )
            with warehouse.open_warehouse(lake, read_only=True) as con:
                got = table_rows(con)
        finally:
            _pg_ctl(state, pg_port, "stop")
        assert ctl.returncode == 0
        for table in expected:
            if table == "feed_state":
                continue  # conditional-GET state of the last fetch: two DAG runs fetched twice
            if table.startswith("search_"):
                continue  # the search index's generation counts refreshes, which differ by run
            assert same_rows(table, got[table], expected[table]), table
        assert expected["articles"] and expected["events"] and expected["translations"]
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _stop(script: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the script, as Ctrl-C or `kill` would: it stops what it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(script.pid, signal.SIGTERM)
    try:
        script.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(script.pid, signal.SIGKILL)
        script.wait(timeout=30)


def _subset(path: Path, keep: set[str], out: Path) -> Path:
    """The outlets file at `path` with only the outlets in `keep`."""
    blocks = path.read_text(encoding="utf-8").split("[[outlet]]")
    kept = [b for b in blocks[1:] if any(f'id = "{k}"' in b for k in keep)]
    out.write_text(blocks[0] + "".join("[[outlet]]" + b for b in kept), encoding="utf-8")
    return out


def _pg_ctl(state: Path, port: str, action: str) -> subprocess.CompletedProcess[bytes]:
    from pipeline.devservices import pg_bindir

    cmd = [str(pg_bindir() / "pg_ctl"), "-D", str(state / "pg"), "-w", "-t", "60"]
    if action == "start":
        cmd += ["-l", str(state / "pg" / "again.log")]
        cmd += [
            "-o",
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={state}",
        ]
    cmd.append(action)
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, timeout=90)
