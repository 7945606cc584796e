"""What ingest remembers between runs (feed_state), what it quarantines, and `parallax status`.

Runs go through the same steps as `parallax ingest` (step_ingest, then step_load_articles into
a DuckDB file), against feeds served from 127.0.0.1 by outlets marked ``allow_private``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from pipeline import warehouse
from pipeline.cli import app
from pipeline.commands.status import outlet_status
from pipeline.records import Outlet, StageResult
from pipeline.run import step_ingest, step_load_articles, step_segment
from pipeline.settings import PROJECT_ROOT, IngestSettings, Settings
from tests.fixtures.ingest.server import Route, Served, serve

INGEST = IngestSettings(connect_timeout_s=1.0, read_timeout_s=1.0, fetch_deadline_s=5.0)
RSS = {"Content-Type": "application/rss+xml"}
HE = "ראש העיר הודיע היום על תוכנית חדשה לשיפור התחבורה הציבורית בעיר. התוכנית תעלה מיליוני שקלים."


def feed(*texts: str, site: str = "news") -> bytes:
    items = "".join(
        f"<item><title>Story {i}</title><link>http://{site}.invalid/{i}</link>"
        f"<description>{text}</description></item>"
        for i, text in enumerate(texts)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>F</title>'
        f"<link>http://news.invalid/</link><description>d</description>{items}</channel></rss>"
    ).encode()


ENGLISH = (
    "The city council approved the new budget on Tuesday after a long debate about transport.",
    "Schools will open a week later this year because of repairs to several old buildings.",
)


@pytest.fixture()
def site() -> Iterator[Served]:
    routes = {
        "/etag.xml": Route(
            feed(*ENGLISH),
            headers={**RSS, "ETag": '"v1"', "Last-Modified": "Tue, 04 Mar 2025 10:00:00 GMT"},
            conditional=True,
        ),
        "/plain.xml": Route(feed(HE, site="plain"), headers=RSS),  # ignores conditional GET
        "/busy.xml": Route(b"later", status=503, headers={"Retry-After": "3600"}),
        "/gone.xml": Route(b"gone", status=410),
    }
    with serve(routes) as served:
        yield served


def _outlets(site: Served) -> list[Outlet]:
    def outlet(oid: str, path: str, lang: str = "en", host: str = "127.0.0.1") -> Outlet:
        url = site.url(path).replace("127.0.0.1", host)
        return Outlet(oid, oid.title(), lang, url, fetch_pages=False, allow_private=True)

    return [
        outlet("etag", "/etag.xml"),
        outlet("plain", "/plain.xml", "he"),
        # another host name for the same server: a 503 holds back only the host that sent it
        outlet("busy", "/busy.xml", host="localhost"),
        outlet("gone", "/gone.xml"),
    ]


def _run(outlets: list[Outlet], settings: Settings) -> tuple[StageResult, dict[str, int]]:
    """One `parallax ingest`: fetch (reading the stored feed state), load, segment."""
    articles, result = step_ingest(outlets, settings)
    with warehouse.open_warehouse(settings) as con:
        step_load_articles(con, outlets, articles, result)
        step_segment(con, settings)
        counts = warehouse.table_counts(
            con, ["articles", "article_versions", "segments", "rejects", "feed_state"]
        )
    return result, counts


@pytest.fixture()
def wh(settings: Settings) -> Settings:
    return replace(settings, ingest=INGEST)


def test_conditional_get_persisted(site: Served, wh: Settings) -> None:
    outlets = _outlets(site)
    first, counts = _run(outlets, wh)
    assert first.counts["feeds_ok"] == 2 and first.counts["articles"] == 3
    assert counts["articles"] == 3 and counts["feed_state"] == 4
    with warehouse.open_warehouse(wh, read_only=True) as con:
        states = warehouse.fetch_feed_states(con)
    assert states["etag"].etag == '"v1"' and states["etag"].last_modified
    assert states["etag"].body_sha256 and states["etag"].items_seen == 2

    asked = len(site.requests)
    second, again = _run(outlets, wh)
    sent = {path: headers for path, headers in site.requests[asked:]}
    assert sent["/etag.xml"]["if-none-match"] == '"v1"'
    assert sent["/etag.xml"]["if-modified-since"] == "Tue, 04 Mar 2025 10:00:00 GMT"
    assert "/busy.xml" not in sent  # still inside its Retry-After window
    assert second.counts["feeds_not_modified"] == 1  # 304: nothing parsed
    assert second.counts["feeds_unchanged"] == 1  # same body, recognised by its hash
    assert second.counts["feeds_deferred"] == 1
    assert second.counts["items"] == 0 and second.counts["articles"] == 0
    assert again == counts  # no new rows anywhere

    site.routes["/plain.xml"] = Route(feed(HE, ENGLISH[0] + " Updated.", site="plain"), headers=RSS)
    third, _ = _run(outlets, wh)
    assert third.counts["items"] == 2 and third.counts["articles"] == 2
    with warehouse.open_warehouse(wh, read_only=True) as con:
        assert warehouse.fetch_feed_states(con)["plain"].items_seen == 3


def test_retry_after_persisted(site: Served, wh: Settings) -> None:
    busy = [o for o in _outlets(site) if o.outlet_id == "busy"]
    before = datetime.now(UTC)
    result, _ = _run(busy, wh)
    assert [r.reason for r in result.rejects] == ["feed_rate_limited"]
    state = warehouse.read_feed_states(wh)["busy"]
    assert state.retry_after is not None
    assert before + timedelta(minutes=59) < state.retry_after < before + timedelta(minutes=61)
    assert state.last_failure_reason == "feed_rate_limited"


def test_no_warehouse_means_unconditional(wh: Settings) -> None:
    assert warehouse.read_feed_states(wh) == {}


def test_status_per_outlet(site: Served, wh: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(_outlets(site), wh)
    rows = {r["outlet_id"]: r for r in outlet_status(wh)}
    assert set(rows) == {"etag", "plain", "busy", "gone"}
    ok, he, busy, gone = rows["etag"], rows["plain"], rows["busy"], rows["gone"]
    assert ok["last_success_at"] and not ok["last_failure_at"]
    assert ok["items_seen"] == 2 and ok["articles_stored"] == 2 and ok["rejects"] == 0
    assert ok["pending_translations"] == 0  # English needs none
    assert he["pending_translations"] > 0  # Hebrew sentences, no model in tests
    assert busy["last_failure_reason"] == "feed_rate_limited" and busy["retry_after"]
    assert busy["rejects_by_reason"] == "feed_rate_limited=1"
    assert gone["last_failure_reason"] == "feed_http_status" and not gone["last_success_at"]

    monkeypatch.setenv("PARALLAX_WAREHOUSE", wh.warehouse)
    monkeypatch.setenv("PARALLAX_RUNTIME_DIR", str(wh.runtime_dir))
    res = CliRunner().invoke(app, ["status", "--json"])
    assert res.exit_code == 0, res.output
    printed = {r["outlet_id"]: r for r in map(json.loads, res.stdout.splitlines())}
    assert printed["gone"]["last_failure_reason"] == "feed_http_status"
    assert printed["plain"]["articles_stored"] == 1
    table = CliRunner().invoke(app, ["status"])
    assert table.exit_code == 0
    assert all(o in table.stdout for o in rows)


HOSTILE = PROJECT_ROOT.parent / "shared" / "hostile-feeds"


@pytest.mark.skipif(
    not HOSTILE.is_dir(), reason=f"hostile feed corpus not found at {HOSTILE} (../shared)"
)
def test_ingest_feed_files_over_the_hostile_corpus(settings: Settings) -> None:
    """Every file parsed or quarantined, none crashed, under 256 MiB, rejects in the warehouse."""
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "PARALLAX_WAREHOUSE": settings.warehouse,
        "PARALLAX_RUNTIME_DIR": str(settings.runtime_dir),
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "ingest", "--feeds", str(HOSTILE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    match = re.fullmatch(
        r"files=(\d+) parsed=(\d+) quarantined=(\d+) crashed=(\d+) peak_rss_mib=(\d+)", last
    )
    assert match, last
    files, parsed, quarantined, crashed, peak = map(int, match.groups())
    assert files == len(list(HOSTILE.rglob("*.xml"))) and parsed + quarantined == files
    assert crashed == 0 and quarantined > 0 and peak < 256, done.stderr[-300:]
    with warehouse.open_warehouse(settings, read_only=True) as con:
        reasons = dict(
            con.execute("SELECT reason, count(*) FROM rejects GROUP BY reason").fetchall()
        )
        stored = con.execute("SELECT count(*) FROM articles").fetchall()[0][0]
    assert reasons["feed_entities"] >= 10 and stored > 0
