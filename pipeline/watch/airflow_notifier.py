"""Alerts through Airflow's notifier mechanism (imported only inside the DAG's watch task).

`WatchAlertNotifier` is an Airflow `BaseNotifier` that sends one alert to one Parallax target
(webhook, email, file) with the same code the CLI uses. The task calls a notifier per pending
delivery, so a failed send raises, the delivery stays pending and the next run retries it.
To send through Slack or any other provider instead, set `[watch] airflow_notifier =
"module:factory"`: a callable taking (target, alert payload dict, alert text) and returning
a BaseNotifier, e.g. `lambda target, alert, text: SlackNotifier(text=text)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from airflow.sdk import BaseNotifier

from pipeline.settings import WatchSettings
from pipeline.watch.notifiers import Alert, Sender, alert_text, send


class WatchAlertNotifier(BaseNotifier):
    """Send one Parallax alert to one 'webhook:'/'email:'/'file:' target."""

    template_fields = ("text",)

    def __init__(self, target: str, alert: Alert, settings: WatchSettings) -> None:
        super().__init__()
        self.target = target
        self.alert = alert
        self.settings = settings
        self.text = alert_text(alert)

    def notify(self, context: Any) -> None:
        send(self.target, self.alert, self.settings)


Factory = Callable[[str, dict[str, Any], str], BaseNotifier]


def _factory(spec: str) -> Factory:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"[watch] airflow_notifier must be 'module:callable', got {spec!r}")
    fn = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise ValueError(f"[watch] airflow_notifier {spec!r} is not callable")
    return fn


def airflow_sender(settings: WatchSettings, context: Any) -> Sender:
    """A sender for `deliver_pending` that calls a BaseNotifier with the task's context."""
    custom = _factory(settings.airflow_notifier) if settings.airflow_notifier else None

    def send_one(target: str, alert: Alert) -> None:
        notifier = (
            custom(target, alert.payload, alert_text(alert))
            if custom is not None
            else WatchAlertNotifier(target, alert, settings)
        )
        notifier(context)  # BaseNotifier.__call__ renders templates, notifies, re-raises

    return send_one
