"""Watchlists: exactly one alert per watch and article, failed sends retried, Airflow notifier.

Notifications go to a local HTTP receiver and a local SMTP server (aiosmtpd), both on
127.0.0.1 with ports picked by the OS.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipeline.cli import app


class Receiver:
    """Webhook receiver: answers 500 to the first `fail` requests, then 200; keeps bodies."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.ok: list[tuple[str, dict[str, Any]]] = []  # (Idempotency-Key, body) accepted
        self.refused = 0


@pytest.fixture()
def webhook() -> Iterator[tuple[str, Receiver]]:
    rec = Receiver(fail=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if rec.fail > 0:
                rec.fail -= 1
                rec.refused += 1
                self.send_response(500)
            else:
                rec.ok.append((self.headers["Idempotency-Key"], body))
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", rec
    server.shutdown()
    server.server_close()


@pytest.fixture()
def smtp() -> Iterator[tuple[int, list[bytes]]]:
    """aiosmtpd on 127.0.0.1, port 0 (its Controller cannot probe port 0, so a loop of ours)."""
    from aiosmtpd.smtp import SMTP

    messages: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            messages.append(envelope.content)
            return "250 OK"

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(lambda: SMTP(Handler()), "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server.sockets[0].getsockname()[1], messages
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    server.close()
    loop.close()


def _alerts(con: Any, watch: str) -> list[tuple[Any, ...]]:
    return con.execute(
        "SELECT article_id, event_id, payload FROM alerts WHERE watch = ? ORDER BY article_id",
        [watch],
    ).fetchall()


def test_watch_added_before_demo_fires_once_and_not_on_a_second_demo(
    demo_warehouse: Path, demo_copy: Path
) -> None:
    from pipeline import warehouse
    from pipeline.settings import load_settings

    alert_file = demo_warehouse.parent / "alerts.jsonl"
    with warehouse.open_warehouse(load_settings()) as con:
        first = _alerts(con, "rafah")
        rafah_event = con.execute(
            "SELECT DISTINCT ea.event_id FROM event_articles ea JOIN articles a USING (article_id) "
            "WHERE a.url LIKE '%/rafah-talks-washington.html'"
        ).fetchall()[0][0]
        members = con.execute(
            "SELECT article_id, lang FROM event_articles JOIN articles USING (article_id) "
            "WHERE event_id = ?",
            [rafah_event],
        ).fetchall()
        assert (
            con.execute("SELECT count(*) FROM alert_deliveries WHERE status <> 'sent'").fetchall()[
                0
            ][0]
            == 0
        )
    alerted = {r[0] for r in first}
    # every article of the Rafah talks, in all three languages, alerted (translations pending)
    assert {a for a, _ in members} <= alerted
    assert {lang for _, lang in members} == {"he", "ar", "en"}
    payload = json.loads(next(r[2] for r in first if r[1] == rafah_event))
    assert payload["event_id"] == rafah_event and set(payload["event_langs"]) == {"he", "ar", "en"}
    assert payload["original"] and "english" in payload and payload["outlet"]
    lines = alert_file.read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(ln)["alert_id"] for ln in lines) == sorted(
        f"rafah:{a}" for a in alerted
    )  # one line per alert, none twice

    res = CliRunner().invoke(app, ["demo", "--port", "0"])  # the second demo
    assert res.exit_code == 0, res.output
    with warehouse.open_warehouse(load_settings()) as con:
        assert _alerts(con, "rafah") == first
    assert alert_file.read_text(encoding="utf-8").splitlines() == lines


def test_failed_webhook_is_retried_next_run_and_nothing_alerts_twice(
    demo_copy: Path, webhook: tuple[str, Receiver], smtp: tuple[int, list[bytes]]
) -> None:
    from pipeline import warehouse
    from pipeline.run import step_watch
    from pipeline.settings import load_settings
    from pipeline.watch.store import Watch, add_watch

    url, receiver = webhook
    port, mails = smtp
    settings = load_settings(watch={"smtp_port": port}, align={"embedder": "none"})
    with warehouse.open_warehouse(settings) as con:
        add_watch(
            con,
            Watch(
                "quake",
                "earthquake",
                mode="lexical",
                notify=(f"webhook:{url}", "email:desk@example.org"),
                created_at=datetime(2000, 1, 1, tzinfo=UTC),  # a backfill over the sample
            ),
        )
        receiver.fail = 100  # the webhook is down for the whole first run
        one = step_watch(con, settings).counts
        n = one["alerts"]
        assert n >= 2 and one["send_failed"] == n and one["sent"] == n  # mails went out
        pending = con.execute(
            "SELECT count(*), min(attempts), min(last_error) FROM alert_deliveries "
            "WHERE status = 'pending'"
        ).fetchall()[0]
        assert pending[0] == n and pending[1] == 1 and "500" in pending[2]
        receiver.fail = 0  # back up: the next run retries and adds no alert
        two = step_watch(con, settings).counts
        assert two.get("alerts", 0) == 0 and two["sent"] == n and two["send_failed"] == 0
        three = step_watch(con, settings).counts
        assert three.get("alerts", 0) == 0 and three["sent"] == 0
        alerted = {f"quake:{r[0]}" for r in _alerts(con, "quake")}
    keys = [k for k, _ in receiver.ok]
    assert sorted(keys) == sorted(alerted)  # each alert accepted once
    body = receiver.ok[0][1]
    assert body["watch"] == "quake" and body["event_outlets"] and body["text"]
    assert len(mails) == n
    mail = message_from_bytes(mails[0])
    assert mail["To"] == "desk@example.org" and "quake" in mail["Subject"]
    assert "Sentence:" in mail.get_payload()


def test_min_outlets_holds_alerts_back(demo_copy: Path) -> None:
    from pipeline import warehouse
    from pipeline.settings import load_settings
    from pipeline.watch.matcher import match_watch
    from pipeline.watch.store import Watch, add_watch

    with warehouse.open_warehouse(load_settings()) as con:
        old = datetime(2000, 1, 1, tzinfo=UTC)
        many = add_watch(con, Watch("many", "Rafah", "lexical", min_outlets=9, created_at=old))
        res = match_watch(con, many, None, semantic_floor=0.9)
        assert res.matched > 0 and res.new_alerts == [] and res.held_back == res.matched
        two = add_watch(con, Watch("two", "Rafah", "lexical", min_outlets=2, created_at=old))
        assert match_watch(con, two, None, semantic_floor=0.9).new_alerts
        fresh = add_watch(con, Watch("fresh", "Rafah", "lexical"))  # created now: nothing new
        assert match_watch(con, fresh, None, semantic_floor=0.9).new_alerts == []


def test_watch_cli_add_list_test_remove(demo_copy: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["watch", "add", "x", "Rafah", "--notify", "pager:123"])
    assert bad.exit_code == 2 and "bad notify target" in bad.output
    res = runner.invoke(
        app,
        ["watch", "add", "gaza", "غزة", "--mode", "lexical", "--notify", f"file:{tmp_path / 'a'}"],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["watch", "list"])
    assert res.exit_code == 0 and "gaza" in res.stdout and "rafah" in res.stdout
    res = runner.invoke(app, ["watch", "test", "gaza"])
    assert res.exit_code == 0, res.output
    assert "ar" in res.stdout and "lexical" in res.stdout
    assert runner.invoke(app, ["watch", "remove", "gaza"]).exit_code == 0
    assert runner.invoke(app, ["watch", "remove", "gaza"]).exit_code == 1


_AIRFLOW = """
import json, sys
from pipeline.settings import WatchSettings
from pipeline.watch.airflow_notifier import WatchAlertNotifier, airflow_sender
from pipeline.watch.notifiers import Alert
from airflow.sdk import BaseNotifier

alert = Alert("w", "a1", {"watch": "w", "query": "q", "outlet_id": "o", "outlet": "O",
    "lang": "he", "title": "t", "url": "u", "event_id": "e", "event_label": "E",
    "event_outlets": ["o"], "event_langs": ["he"], "original": "ברפיח", "english": None})
assert issubclass(WatchAlertNotifier, BaseNotifier)
airflow_sender(WatchSettings(), {})("file:" + sys.argv[1], alert)
custom = WatchSettings(airflow_notifier="tests.test_watch:recording_notifier")
airflow_sender(custom, {})("file:/unused", alert)
failed = False
try:
    airflow_sender(WatchSettings(), {})("webhook:http://127.0.0.1:9/none", alert)
except Exception:
    failed = True
print("RESULT " + json.dumps({"failed": failed}))
"""


def recording_notifier(target: str, alert: dict[str, Any], text: str) -> Any:
    """A user's swapped-in notifier factory (what `[watch] airflow_notifier` names)."""
    from airflow.sdk import BaseNotifier

    class Recording(BaseNotifier):
        def notify(self, context: Any) -> None:
            Path(os.environ["RECORD_TO"]).write_text(text, encoding="utf-8")

    return Recording()


def test_airflow_notifier_sends_and_can_be_swapped(tmp_path: Path) -> None:
    from pipeline.settings import PROJECT_ROOT

    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "PYTHONPATH": str(PROJECT_ROOT),
        "RECORD_TO": str(tmp_path / "custom.txt"),
    }
    out = tmp_path / "alerts.jsonl"
    proc = subprocess.run(
        [sys.executable, "-c", _AIRFLOW, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert result["failed"]  # a refused send raises, so the delivery stays pending
    assert json.loads(out.read_text(encoding="utf-8"))["alert_id"] == "w:a1"
    assert "ברפיח" in (tmp_path / "custom.txt").read_text(encoding="utf-8")
