"""Readers during loads: another process holding the DuckDB file makes a load wait, not fail.

The analyst is a real second process with the warehouse open read-only, running a query; the
load (the first stages of `run.run_all` over saved feeds) retries with backoff, logs who holds
the file, and succeeds once the analyst is done, and the analyst's query completes.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import warehouse
from pipeline.ingest.outlets import load_outlets
from pipeline.run import RUN_STEPS, run_all
from pipeline.settings import PROJECT_ROOT, Settings, load_settings

_ANALYST = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
t0 = time.monotonic()
n = 0
while time.monotonic() - t0 < float(sys.argv[2]):  # a long analytical query, in pieces
    n += con.execute("SELECT count(*) FROM outlets").fetchall()[0][0] + 1
con.close()
print(f"done {n}", flush=True)
"""


def _settings(tmp: Path, **lock: float) -> Settings:
    return load_settings(
        warehouse=str(tmp / "wh.duckdb"),
        runtime_dir=tmp / "var",
        staging_dir=tmp / "var" / "staging",
        models_dir=tmp / "no-models",
        lock={"backoff_s": 0.1, "max_backoff_s": 0.4, **lock},
    )


def _feeds(tmp: Path) -> list[Path]:
    (tmp / "feeds").mkdir()
    out = []
    for feed in sorted((PROJECT_ROOT / "samples" / "site").glob("*/feed.xml")):
        out.append(Path(shutil.copyfile(feed, tmp / "feeds" / f"{feed.parent.name}.xml")))
    return out


def _analyst(settings: Settings, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _ANALYST, settings.warehouse, str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def test_load_waits_for_an_analyst_then_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path, wait_s=60)
    with warehouse.open_warehouse(settings):
        pass  # the schema exists, as on a deployed warehouse
    warehouse.HOLDS.clear()  # holds of this process: only this load's
    started: list[str] = []
    done: list[str] = []
    analysts: list[subprocess.Popen[str]] = []
    t0 = time.monotonic()

    def on_start(stage: str) -> None:
        nonlocal t0
        started.append(stage)
        if stage == "load":  # the analyst opens the file just before the load needs it
            analysts.append(_analyst(settings, 2.0))
            t0 = time.monotonic()

    with caplog.at_level(logging.INFO, logger="pipeline.warehouse"):
        summary = run_all(
            load_outlets(PROJECT_ROOT / "config" / "outlets.toml"),
            settings,
            feeds=_feeds(tmp_path),
            steps=RUN_STEPS[:2],  # ingest, load
            on_start=on_start,
            on_done=lambda r: done.append(r.stage),
        )
    waited = time.monotonic() - t0
    (analyst,) = analysts
    out, err = analyst.communicate(timeout=60)
    assert analyst.returncode == 0, err
    assert out.startswith("done ")  # the analyst's query ran to its end
    assert started == ["ingest", "load"] and done == ["ingest", "load"]
    assert summary.counts("load")["new"] == 37
    assert waited >= 1.0
    lines = [r.getMessage() for r in caplog.records if "is locked by" in r.getMessage()]
    assert lines, caplog.text
    assert f"(PID {analyst.pid})" in lines[0] and "waiting" in lines[0]
    assert any(
        r.getMessage().startswith(f"warehouse {settings.warehouse} opened after")
        for r in caplog.records
    )
    with warehouse.open_warehouse(settings, read_only=True) as con:
        assert warehouse.table_counts(con, ["articles"])["articles"] == 37
    hold = warehouse.longest_hold()
    assert hold is not None and hold.seconds < waited


def test_load_gives_up_after_the_configured_wait_naming_the_holder(tmp_path: Path) -> None:
    settings = _settings(tmp_path, wait_s=0.5)
    with warehouse.open_warehouse(settings):
        pass
    analyst = _analyst(settings, 3.0)
    try:
        t0 = time.monotonic()
        with (
            pytest.raises(warehouse.WarehouseLocked, match=f"PID {analyst.pid}"),
            warehouse.open_warehouse(settings),
        ):
            pass
        assert time.monotonic() - t0 < 2.5
    finally:
        analyst.communicate(timeout=60)
    assert analyst.returncode == 0
