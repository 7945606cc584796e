"""Group articles into cross-outlet, cross-language events whenever translations land.

Embedding (the slow part) runs first with no database open and caches the vectors; alignment
then reads every article with its English text and writes events in the one-slot
`parallax_warehouse` pool, holding the file only to cluster and load; articles already placed
keep their event, so a re-run adds nothing. Completing it updates the events asset for whatever
consumes events downstream; the report site under the runtime folder is refreshed last.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, dag, task

from pipeline.settings import load_settings

_AIRFLOW = load_settings().airflow  # schedule, pools, queue: light to read at parse time

TRANSLATIONS = Asset("parallax://warehouse/translations")
EVENTS = Asset("parallax://warehouse/events")
WAREHOUSE_POOL = _AIRFLOW.warehouse_pool

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "parallax",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


@dag(
    dag_id="parallax_align",
    schedule=[TRANSLATIONS],
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["parallax", "align"],
    doc_md=__doc__,
)
def parallax_align() -> None:
    @task
    def embed() -> dict[str, int]:
        """Article vectors, computed with no database open (outside the warehouse pool: it
        holds the file only for a short read and a short write, waiting if a load holds it)."""
        from pipeline.run import step_embed
        from pipeline.settings import load_settings

        return step_embed(load_settings()).counts

    @task
    def embed_segments() -> dict[str, int]:
        """Sentence vectors of the events, likewise with no database open while embedding."""
        from pipeline.run import step_embed_segments
        from pipeline.settings import load_settings

        return step_embed_segments(load_settings()).counts

    @task(pool=WAREHOUSE_POOL)
    def align() -> dict[str, int]:
        """Assign articles not yet in an event and write the events."""
        from pipeline import warehouse
        from pipeline.run import step_align
        from pipeline.settings import load_settings

        settings = load_settings()
        with warehouse.open_warehouse(settings) as con:
            result = step_align(con, settings)
            counts = warehouse.table_counts(con, ["events", "event_articles"])
        return {**result.counts, **counts}

    @task(pool=WAREHOUSE_POOL, outlets=[EVENTS])
    def link() -> dict[str, int]:
        """Sentence links, divergences and unique statements of the events that changed (the
        warehouse is held only to read their inputs and to write the result)."""
        from pipeline import warehouse
        from pipeline.run import step_link_apart
        from pipeline.settings import load_settings

        settings = load_settings()
        result = step_link_apart(settings)
        with warehouse.open_warehouse(settings, read_only=True) as con:
            counts = warehouse.table_counts(con, ["segment_links", "divergences"])
        return {**result.counts, **counts}

    @task(pool=WAREHOUSE_POOL)
    def watch() -> dict[str, int]:
        """Alerts for watchlists: exactly one per watch and new article, sent through Airflow
        notifiers (a BaseNotifier per alert; failed sends are retried on the next run)."""
        from airflow.sdk import get_current_context

        from pipeline import warehouse
        from pipeline.run import step_watch
        from pipeline.settings import load_settings
        from pipeline.watch.airflow_notifier import airflow_sender

        settings = load_settings()
        sender = airflow_sender(settings.watch, get_current_context())
        with warehouse.open_warehouse(settings) as con:
            return step_watch(con, settings, sender=sender).counts

    @task(pool=WAREHOUSE_POOL)
    def report() -> dict[str, int]:
        """Refresh the report site under the runtime folder, so a bookmark shows the latest."""
        from pipeline import warehouse
        from pipeline.run import step_report
        from pipeline.settings import load_settings

        settings = load_settings()
        with warehouse.open_warehouse(settings, read_only=True) as con:
            return step_report(con, settings).counts

    embed() >> align() >> embed_segments() >> link() >> watch() >> report()


parallax_align()
