"""`parallax demo` as a newcomer runs it: sample served on 127.0.0.1, summary on the last line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app

SUMMARY = re.compile(
    r"articles=(\d+) languages=([a-z,]+) segments=(\d+) translated=(\d+) pending=(\d+) "
    r"events=(\d+) warehouse=(\S+) export=(\S+) report=(\S+)"
)


def test_demo_runs_end_to_end_and_reports(demo_run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    res = demo_run
    assert res.exit_code == 0, res.output
    m = SUMMARY.fullmatch(res.stdout.strip().splitlines()[-1])
    assert m, res.stdout[-500:]
    articles, langs, segments, translated, pending, events = m.groups()[:6]
    assert int(articles) >= 36 and set(langs.split(",")) == {"he", "ar", "en"}
    assert int(translated) > 0 and int(pending) == 0 and int(events) >= 5
    assert Path(m.group(7)) == res.root / "wh.duckdb"
    html = Path(m.group(8)).read_text(encoding="utf-8")
    assert 'dir="rtl"' in html
    assert Path(m.group(9)) == res.root / "var" / "report" / "index.html"
    assert Path(m.group(9)).is_file()
    for key, value in res.env.items():
        monkeypatch.setenv(key, value)
    res = CliRunner().invoke(app, ["sql", "select lang, count(*) from articles group by 1"])
    assert res.exit_code == 0 and "he" in res.stdout
