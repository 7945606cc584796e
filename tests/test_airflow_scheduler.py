"""The DAGs under a real Airflow: api-server, scheduler (LocalExecutor) and dag-processor.

Triggers two ingest runs at once through the REST API; the articles asset schedules translation,
the translations asset schedules alignment. All runs must succeed and the warehouse must hold
each article once. Every process started here is stopped by process group at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.test_dags import DAG_IDS, airflow_env, sample_outlets_toml, stages_ready

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not stages_ready(), reason="stage packages or samples not written yet"),
]

COMPONENTS = ("api-server", "scheduler", "dag-processor")
WAIT_S = 200.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Airflow:
    base: str
    env: dict[str, str]
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    peak_rss_mb: float = 0.0

    def sample_memory(self) -> None:
        """Add up the resident memory of every process in our process groups (workers included)."""
        import psutil

        groups = {p.pid for p in self.procs}
        total = 0
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(proc.pid) in groups:
                    total += proc.memory_info().rss
            except (psutil.Error, ProcessLookupError):
                continue
        self.peak_rss_mb = max(self.peak_rss_mb, total / 2**20)

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.logs.glob("*.log"))
        )


def _stop(procs: list[subprocess.Popen[bytes]], grace_s: float = 20.0) -> list[int]:
    """SIGTERM each process group, SIGKILL what is left after the grace period; returns leftovers."""
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
    leftovers: list[int] = []
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # LocalExecutor workers live in the scheduler's group
        except ProcessLookupError:
            continue
        p.wait(timeout=10)
    time.sleep(0.5)
    for p in procs:
        try:
            os.killpg(p.pid, 0)
            leftovers.append(p.pid)
        except ProcessLookupError:
            pass
    return leftovers


@pytest.fixture()
def airflow(tmp_path: Path, sample_server: str, tiny_models_dir: Path) -> Iterator[Airflow]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "parallax.toml"
    config.write_text("[translate]\nmax_new_tokens = 8\n", encoding="utf-8")
    env = airflow_env(
        tmp_path / "airflow",
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{base}/execution/",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__BASE_URL=base,
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        PARALLAX_INGEST_SCHEDULE="none",  # only the runs this test triggers
        PARALLAX_OUTLETS=str(sample_outlets_toml(sample_server, tmp_path / "outlets.toml")),
        PARALLAX_WAREHOUSE=str(tmp_path / "wh.duckdb"),
        PARALLAX_RUNTIME_DIR=str(tmp_path / "var"),
        PARALLAX_MODELS_DIR=str(tiny_models_dir),
        PARALLAX_CONFIG=str(config),
    )
    exe = str(Path(sys.executable).parent / "airflow")
    subprocess.run([exe, "db", "migrate"], env=env, check=True, capture_output=True, timeout=120)
    subprocess.run(
        [sys.executable, "-m", "pipeline.airflow_setup"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    af = Airflow(base=base, env=env, logs=logs)
    try:
        for name in COMPONENTS:
            with (logs / f"{name}.log").open("wb") as out:
                af.procs.append(
                    subprocess.Popen(
                        [exe, name],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        yield af
    finally:
        leftovers = _stop(af.procs)
        assert leftovers == [], f"process groups still alive: {leftovers}"


def _get(client: Any, path: str) -> Any:
    resp = client.get(path)
    resp.raise_for_status()
    return resp.json()


def _wait(af: Airflow, what: str, check: Any, deadline: float) -> Any:
    while time.monotonic() < deadline:
        af.sample_memory()
        for p in af.procs:
            assert p.poll() is None, f"{p.args!r} exited early\n{af.log_tail()}"
        try:
            got = check()
        except Exception:  # the API is starting or the DAG not parsed yet
            got = None
        if got:
            return got
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}\n{af.log_tail()}")


def test_two_concurrent_ingests_drive_translate_and_align(airflow: Airflow) -> None:
    import httpx

    from pipeline import warehouse
    from pipeline.settings import load_settings

    af = airflow
    t0 = time.monotonic()
    deadline = t0 + WAIT_S
    # generous: on a busy 2-core machine the one api-server worker can take many seconds
    with httpx.Client(base_url=af.base, timeout=60) as client:
        token = _wait(
            af,
            "a token",
            lambda: client.get("/auth/token").json().get("access_token"),
            deadline,
        )
        client.headers["Authorization"] = f"Bearer {token}"
        _wait(
            af,
            "the DAGs to be parsed",
            lambda: all(client.get(f"/api/v2/dags/{d}").status_code == 200 for d in DAG_IDS),
            deadline,
        )
        for dag_id in DAG_IDS:  # paused-at-creation is off, but make it explicit
            client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        started = time.monotonic()
        ingest_ids = []
        for _ in range(2):  # two runs at once: both stage in parallel, loads queue on the pool
            resp = client.post("/api/v2/dags/parallax_ingest/dagRuns", json={"logical_date": None})
            resp.raise_for_status()
            ingest_ids.append(resp.json()["dag_run_id"])

        def states(dag_id: str) -> list[str]:
            runs = _get(client, f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"]
            return [r["state"] for r in runs]

        def all_done() -> bool:
            ingest, translate, align = (states(d) for d in DAG_IDS)
            assert "failed" not in ingest + translate + align, (ingest, translate, align)
            return (
                ingest == ["success", "success"]
                and bool(translate)
                and bool(align)
                and set(translate) == {"success"}
                and set(align) == {"success"}
            )

        _wait(af, "all runs to succeed", all_done, deadline)
        took = time.monotonic() - started
        # an asset event from the second load may still queue one more translate/align run
        time.sleep(2)
        _wait(af, "asset-triggered runs to settle", all_done, deadline)

    print(
        f"\nreal scheduler: ready in {started - t0:.1f}s, three DAGs done in {took:.1f}s, "
        f"peak RSS of Airflow processes {af.peak_rss_mb:.0f} MiB"
    )
    settings = load_settings(
        warehouse=af.env["PARALLAX_WAREHOUSE"], runtime_dir=Path(af.env["PARALLAX_RUNTIME_DIR"])
    )
    with warehouse.open_warehouse(settings, read_only=True) as con:
        counts = warehouse.table_counts(con, ["articles", "segments", "events", "event_articles"])
        dup_urls = con.execute("SELECT count(*) - count(DISTINCT url) FROM articles").fetchall()[0][
            0
        ]
        pending = con.execute("SELECT count(*) FROM pending_translations").fetchall()[0][0]
        versions = con.execute("SELECT max(version) FROM articles").fetchall()[0][0]
    assert counts["articles"] >= 30
    assert dup_urls == 0
    assert versions == 1  # the second run's identical batch changed no article
    assert counts["event_articles"] == counts["articles"]
    assert counts["events"] >= 3
    assert pending == 0
