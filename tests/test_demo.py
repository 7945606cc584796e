"""`parallax demo` as a newcomer runs it: sample served on 127.0.0.1, summary on the last line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app

SUMMARY = re.compile(
    r"articles=(\d+) languages=([a-z,]+) segments=(\d+) translated=(\d+) pending=(\d+) "
    r"events=(\d+) warehouse=(\S+) export=(\S+)"
)


def test_demo_runs_end_to_end_and_reports(
    tmp_path: Path, tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "parallax.toml"
    # the tiny random model never emits end-of-sentence: keep its nonsense short
    config.write_text("[translate]\nmax_new_tokens = 16\n", encoding="utf-8")
    monkeypatch.setenv("PARALLAX_CONFIG", str(config))
    monkeypatch.setenv("PARALLAX_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("PARALLAX_RUNTIME_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PARALLAX_MODELS_DIR", str(tiny_models_dir))
    res = CliRunner().invoke(app, ["demo", "--port", "0"])
    assert res.exit_code == 0, res.output
    m = SUMMARY.fullmatch(res.stdout.strip().splitlines()[-1])
    assert m, res.stdout[-500:]
    articles, langs, segments, translated, pending, events = m.groups()[:6]
    assert int(articles) >= 36 and set(langs.split(",")) == {"he", "ar", "en"}
    assert int(translated) > 0 and int(pending) == 0 and int(events) >= 5
    assert Path(m.group(7)) == tmp_path / "wh.duckdb"
    html = Path(m.group(8)).read_text(encoding="utf-8")
    assert 'dir="rtl"' in html
    res = CliRunner().invoke(app, ["sql", "select lang, count(*) from articles group by 1"])
    assert res.exit_code == 0 and "he" in res.stdout
