"""Sending alerts: webhook (httpx), email (smtplib) or file, and the retry loop over deliveries.

No alert is lost: every alert gets its `alert_deliveries` rows ('pending') in the same
transaction that records it, and `deliver_pending` tries every pending row on every run,
marking it 'sent' only after the send returned. A failed send stays pending with its error and
attempt count, and is retried on the next run. A crash between a successful send and its
'sent' mark would send it once more on the next run (at-least-once delivery), so every
notification carries the alert's stable id (`watch:article_id`; the webhook's
`Idempotency-Key` header, the email's Message-ID) for the receiver to drop a repeat.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.watch.store import parse_target

if TYPE_CHECKING:
    import duckdb

    from pipeline.settings import WatchSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    watch: str
    article_id: str
    payload: dict[str, Any]

    @property
    def alert_id(self) -> str:
        return f"{self.watch}:{self.article_id}"


def alert_text(alert: Alert) -> str:
    """Plain-text body: the event, who covered it in which languages, and the sentence."""
    p = alert.payload
    lines = [
        f"Parallax watch {p['watch']!r} ({p['query']}) matched new coverage.",
        f"Event: {p.get('event_label') or '(not in an event yet)'} [{p.get('event_id') or '-'}]",
        f"Outlets: {', '.join(p.get('event_outlets') or [p['outlet_id']])}",
        f"Languages: {', '.join(p.get('event_langs') or [p['lang']])}",
        f"Article: {p['outlet']} [{p['lang']}] {p.get('published_at') or ''} {p['title']}",
        f"  {p['url']}",
        f"Sentence: {p.get('original') or ''}",
        f"English:  {p.get('english') or '(translation pending)'}",
    ]
    return "\n".join(lines)


def alert_subject(alert: Alert) -> str:
    p = alert.payload
    return f"[parallax] {p['watch']}: {p.get('event_label') or p['title']}"


def send_webhook(url: str, alert: Alert, settings: WatchSettings) -> None:
    import httpx

    body = {"alert_id": alert.alert_id, "text": alert_text(alert), **alert.payload}
    response = httpx.post(
        url,
        json=body,
        headers={"Idempotency-Key": alert.alert_id, "User-Agent": "Parallax-watch"},
        timeout=settings.webhook_timeout_s,
    )
    response.raise_for_status()


def send_email(address: str, alert: Alert, settings: WatchSettings) -> None:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = address
    msg["Subject"] = alert_subject(alert)
    msg["Message-ID"] = f"<{alert.alert_id.replace(':', '.')}@parallax>"
    msg.set_content(alert_text(alert))
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, os.environ.get("PARALLAX_SMTP_PASSWORD", ""))
        smtp.send_message(msg)


def send_file(path: str, alert: Alert, settings: WatchSettings) -> None:
    """One JSON line per alert, appended and flushed to disk."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"alert_id": alert.alert_id, **alert.payload}, ensure_ascii=False)
    with target.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


SENDERS: dict[str, Callable[[str, Alert, WatchSettings], None]] = {
    "webhook": send_webhook,
    "email": send_email,
    "file": send_file,
}


def send(target: str, alert: Alert, settings: WatchSettings) -> None:
    """Deliver one alert to one 'kind:address' target; raises on failure."""
    kind, address = parse_target(target)
    SENDERS[kind](address, alert, settings)


Sender = Callable[[str, Alert], None]


@dataclass
class DeliveryResult:
    sent: int = 0
    failed: int = 0


def deliver_pending(
    con: duckdb.DuckDBPyConnection,
    settings: WatchSettings,
    sender: Sender | None = None,
    *,
    at: datetime | None = None,
) -> DeliveryResult:
    """Try every pending delivery once. `sender(target, alert)` defaults to :func:`send`; the
    Airflow task passes one that goes through a BaseNotifier. On a DuckLake the whole pass
    holds the `alert_deliveries` advisory lock, so two workers never send the same pending
    alert at once (the second sees the first one's 'sent' marks)."""
    from pipeline.warehouse_backends import table_locks

    with table_locks(con, ("alert_deliveries",)):
        return _deliver_pending(con, settings, sender, at=at)


def _deliver_pending(
    con: duckdb.DuckDBPyConnection,
    settings: WatchSettings,
    sender: Sender | None,
    *,
    at: datetime | None,
) -> DeliveryResult:
    from pipeline.warehouse import transaction

    do_send: Sender = sender or (lambda target, alert: send(target, alert, settings))
    rows = con.execute(
        "SELECT d.watch, d.article_id, d.target, a.payload FROM alert_deliveries d "
        "JOIN alerts a USING (watch, article_id) WHERE d.status = 'pending' "
        "ORDER BY a.created_at, d.watch, d.article_id, d.target"
    ).fetchall()
    result = DeliveryResult()
    for watch, article_id, target, payload in rows:
        alert = Alert(watch, article_id, json.loads(payload))
        now = at or datetime.now(UTC)
        try:
            do_send(target, alert)
        except Exception as exc:  # any failure of the outside world: keep pending, retry later
            result.failed += 1
            log.warning(
                "watch %s: delivery to %s failed (%s); retried next run", watch, target, exc
            )
            with transaction(con):
                con.execute(
                    "UPDATE alert_deliveries SET attempts = attempts + 1, last_error = ?, "
                    "last_attempt = ? WHERE watch = ? AND article_id = ? AND target = ?",
                    [f"{type(exc).__name__}: {exc}"[:500], now, watch, article_id, target],
                )
            continue
        result.sent += 1
        with transaction(con):
            con.execute(
                "UPDATE alert_deliveries SET status = 'sent', attempts = attempts + 1, "
                "last_error = NULL, last_attempt = ?, sent_at = ? "
                "WHERE watch = ? AND article_id = ? AND target = ?",
                [now, now, watch, article_id, target],
            )
    return result
