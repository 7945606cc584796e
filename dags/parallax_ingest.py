"""Ingest every configured outlet in parallel, then load and segment under the warehouse pool.

`ingest_outlet` is mapped over the outlets: each fetches its feed and pages, extracts and detects
language with no database, and stages its batch as a file; XCom carries only the file paths. The
one-slot `parallax_warehouse` pool makes `load` the only writer of the DuckDB file at a time.
Completing `load` updates the articles asset, which schedules `parallax_translate`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, dag, get_current_context, task

from pipeline.settings import load_settings

_AIRFLOW = load_settings().airflow  # schedule, pools, queue: light to read at parse time

ARTICLES = Asset("parallax://warehouse/articles")
# A cron expression; "none" leaves the DAG to manual, API or backfill triggers.
_SCHEDULE = _AIRFLOW.ingest_schedule.strip()
SCHEDULE = None if _SCHEDULE.lower() in {"", "none"} else _SCHEDULE
WAREHOUSE_POOL = _AIRFLOW.warehouse_pool

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "parallax",
    "retries": 1,
    "retry_delay": timedelta(seconds=_AIRFLOW.retry_delay_s),
}
NETWORK_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay": timedelta(seconds=_AIRFLOW.retry_delay_s),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def _archived_feed(ctx: Any, outlet_id: str) -> Path | None:
    """With run conf `archive_dir` (a backfill of saved feeds), the outlet's feed saved for the
    run's data interval: `<archive_dir>/<YYYY-MM-DD>/<outlet_id>.xml`; None for a live run."""
    conf = getattr(ctx.get("dag_run"), "conf", None) or {}
    archive_dir = str(conf.get("archive_dir", "")).strip()
    if not archive_dir:
        return None
    day = ctx.get("data_interval_start") or ctx.get("logical_date")
    if day is None:
        raise ValueError("archive_dir needs a dated run: use `airflow backfill create`")
    return Path(archive_dir) / f"{day:%Y-%m-%d}" / f"{outlet_id}.xml"


@dag(
    dag_id="parallax_ingest",
    schedule=SCHEDULE,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=2,
    default_args=DEFAULT_ARGS,
    tags=["parallax", "ingest"],
    doc_md=__doc__,
)
def parallax_ingest() -> None:
    @task
    def list_outlets() -> list[str]:
        """Outlet ids from the outlets file, so a new outlet needs no DAG change."""
        from pipeline.ingest.outlets import load_outlets
        from pipeline.settings import load_settings

        return [o.outlet_id for o in load_outlets(load_settings().outlets_path)]

    @task(**NETWORK_RETRIES, map_index_template="{{ task.op_kwargs['outlet_id'] }}")
    def ingest_outlet(outlet_id: str) -> dict[str, Any]:
        """Fetch, extract and detect one outlet; stage articles and rejects for this run and try."""
        from pipeline import faults, staging
        from pipeline.ingest.outlets import load_outlets
        from pipeline.run import step_ingest
        from pipeline.settings import load_settings

        settings = load_settings()
        outlets = [o for o in load_outlets(settings.outlets_path) if o.outlet_id == outlet_id]
        if not outlets:
            raise ValueError(f"outlet {outlet_id!r} is no longer in {settings.outlets_path}")
        ctx = get_current_context()
        ti = ctx["ti"]
        faults.point(f"ingest_outlet.{outlet_id}.try{ti.try_number}")  # tests: fail, then retry
        archive = _archived_feed(ctx, outlet_id)
        if archive is None:
            articles, result = step_ingest(outlets, settings)
        else:  # a backfill over saved feeds: the interval's file, text from the feed items
            from pipeline.run import step_ingest_files

            articles, result = step_ingest_files([archive] if archive.is_file() else [], settings)
        art_path, rej_path, state_path = (
            staging.batch_path(
                settings.staging_dir,
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                try_number=ti.try_number,
                key=outlet_id,
                kind=kind,
            )
            for kind in ("articles", "rejects", "feed_state")
        )
        staging.write_batch(art_path, articles)
        staging.write_batch(rej_path, result.rejects)
        staging.write_batch(state_path, result.feed_states)
        return {
            "outlet_id": outlet_id,
            "articles": str(art_path),
            "rejects": str(rej_path),
            "feed_state": str(state_path),
            "counts": dict(result.counts),
        }

    @task(pool=WAREHOUSE_POOL, outlets=[ARTICLES], retries=3, retry_exponential_backoff=True)
    def load(batches: list[dict[str, Any]]) -> dict[str, int]:
        """Load this run's staged batches (the paths its mapped tasks returned), then segment."""
        from pathlib import Path

        from pipeline import faults, staging, warehouse
        from pipeline.ingest.outlets import load_outlets
        from pipeline.records import Article, FeedState, Reject, StageResult
        from pipeline.run import step_load_articles, step_segment
        from pipeline.settings import load_settings

        settings = load_settings()
        batches = list(batches)
        ids = {b["outlet_id"] for b in batches}
        outlets = [o for o in load_outlets(settings.outlets_path) if o.outlet_id in ids]
        articles: list[Article] = []
        ingest = StageResult("ingest")
        for batch in batches:
            articles += staging.read_batch(Path(batch["articles"]), Article)
            ingest.rejects += staging.read_batch(Path(batch["rejects"]), Reject)
            if batch.get("feed_state"):  # conditional GET state, written after the articles
                ingest.feed_states += staging.read_batch(Path(batch["feed_state"]), FeedState)
        with warehouse.open_warehouse(settings, purpose="ingest load") as con:
            loaded = step_load_articles(con, outlets, articles, ingest)
            segmented = step_segment(con, settings)
        # tests: a crash here has committed but not reported success
        faults.point(f"ingest.load.committed.try{get_current_context()['ti'].try_number}")
        counts = {f"load_{k}": v for k, v in loaded.counts.items()}
        counts.update({f"segment_{k}": v for k, v in segmented.counts.items()})
        counts["rejects"] = len(ingest.rejects)
        return counts

    load(ingest_outlet.expand(outlet_id=list_outlets()))  # type: ignore[arg-type]


parallax_ingest()
