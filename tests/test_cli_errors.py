"""Errors a user can act on, through the real `parallax` app: one line with the fix, a non-zero
exit code, no traceback (unless -v)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline import warehouse
from pipeline.cli import app
from pipeline.errors_cli import lock_holder
from pipeline.settings import PROJECT_ROOT, Settings
from tests.test_export import _fill

runner = CliRunner()
GOLD = str(PROJECT_ROOT / "samples" / "gold_events.csv")


@pytest.fixture()
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.setenv("PARALLAX_WAREHOUSE", settings.warehouse)
    monkeypatch.setenv("PARALLAX_RUNTIME_DIR", str(settings.runtime_dir))
    monkeypatch.setenv("PARALLAX_MODELS_DIR", str(settings.models_dir))
    monkeypatch.setenv("PARALLAX_CONFIG", str(tmp_path / "parallax.toml"))  # absent: defaults
    return settings


def _one_line_error(res: object, exit_code: int, *needles: str) -> str:
    out = res.output  # type: ignore[attr-defined]
    assert res.exit_code == exit_code, out  # type: ignore[attr-defined]
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "fix:" in lines[0]
    return lines[0]


def test_no_warehouse_yet(env: Settings) -> None:
    res = runner.invoke(app, ["eval", "events", "--gold", GOLD])
    line = _one_line_error(res, 1, f"no warehouse at {env.warehouse}", "parallax demo")
    assert "IOException" not in line
    verbose = runner.invoke(app, ["-v", "eval", "events", "--gold", GOLD])
    assert verbose.exit_code == 1 and "Traceback" in verbose.output


@pytest.fixture()
def held_lock(env: Settings) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the warehouse's write lock."""
    with warehouse.open_warehouse(env):
        pass
    code = (
        "import sys, duckdb; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
        "sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, env.warehouse],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    try:
        yield proc
    finally:
        proc.communicate(timeout=30)


def test_warehouse_locked_names_the_holder(
    held_lock: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the lock is real; the configured wait is short and the sleeps between retries skipped
    (tmp_path / "parallax.toml").write_text("[lock]\nwait_s = 0.5\n", encoding="utf-8")
    monkeypatch.setattr(warehouse.time, "sleep", lambda s: None)
    res = runner.invoke(app, ["align"])
    _one_line_error(res, 1, "is locked by", f"PID {held_lock.pid}", "wait")


def test_lock_holder_parses_duckdb_message() -> None:
    text = (
        'IO Error: Could not set lock on file "/x/wh.duckdb": Conflicting lock is held in '
        "/usr/bin/python3.11 (PID 4242) by user root. See also https://duckdb.org/docs"
    )
    assert lock_holder(text) == "/usr/bin/python3.11 (PID 4242, user root)"
    assert lock_holder("some other error") == ""


def test_no_outlets_configured(
    env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "outlets.toml"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    monkeypatch.setenv("PARALLAX_OUTLETS", str(empty))
    res = runner.invoke(app, ["run"])
    _one_line_error(res, 1, "no outlets configured", "parallax outlets add")
    monkeypatch.setenv("PARALLAX_OUTLETS", str(tmp_path / "missing.toml"))
    _one_line_error(runner.invoke(app, ["ingest"]), 1, "no outlets file at")


def test_invalid_toml_names_file_and_line(env: Settings, tmp_path: Path) -> None:
    cfg = tmp_path / "parallax.toml"
    cfg.write_text('[translate]\nengine = "ctranslate2\n', encoding="utf-8")
    line = _one_line_error(runner.invoke(app, ["where"]), 2, str(cfg), "line 2")
    assert "not valid TOML" in line


def test_invalid_outlets_toml_names_file_and_line(
    env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "outlets.toml"
    bad.write_text('[[outlet]]\nid = "a"\nname = \n', encoding="utf-8")
    monkeypatch.setenv("PARALLAX_OUTLETS", str(bad))
    _one_line_error(runner.invoke(app, ["outlets", "check"]), 2, str(bad), "line 3")


def test_unknown_setting(env: Settings, tmp_path: Path) -> None:
    cfg = tmp_path / "parallax.toml"
    cfg.write_text("[translate]\nbeams = 4\n", encoding="utf-8")
    _one_line_error(
        runner.invoke(app, ["sql", "select 1"]), 2, str(cfg), "unknown settings", "beams"
    )


def test_unknown_event_id(env: Settings) -> None:
    with warehouse.open_warehouse(env) as con:
        _fill(con)
    _one_line_error(runner.invoke(app, ["export", "--event", "ev_nope"]), 1, "ev_nope")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_hub(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    res = runner.invoke(app, ["models", "download"])
    _one_line_error(res, 1, f"cannot reach {endpoint}", "parallax models download")


def test_missing_model(env: Settings) -> None:
    with warehouse.open_warehouse(env) as con:
        _fill(con)  # leaves one Hebrew sentence without a translation
    res = runner.invoke(app, ["translate"])
    _one_line_error(
        res, 1, "Helsinki-NLP/opus-mt-he-en", "is not usable", "parallax models download"
    )
