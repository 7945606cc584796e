"""Keep a DuckLake warehouse small and fast: daily compaction and snapshot expiry.

Every load commits a DuckLake snapshot with its own small files (or rows inlined in the
catalog); after months of loads every half hour, reads would open thousands of files. `compact`
flushes inlined rows to Parquet, merges adjacent small files (`ducklake_merge_adjacent_files`),
expires snapshots older than `PARALLAX_SNAPSHOT_RETENTION_DAYS` (7: time travel a week back) and
deletes the files only they referenced. On a DuckDB file it runs CHECKPOINT. It holds one slot of
the warehouse pool like any writer; DuckLake retries a compaction that meets a concurrent commit.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

from pipeline.settings import load_settings

_AIRFLOW = load_settings().airflow  # pools: light to read at parse time
WAREHOUSE_POOL = _AIRFLOW.warehouse_pool
RETENTION_DAYS = float(os.environ.get("PARALLAX_SNAPSHOT_RETENTION_DAYS", "7"))
# A cron expression or preset; "none": manual triggers only.
_SCHEDULE = os.environ.get("PARALLAX_MAINTENANCE_SCHEDULE", "@daily").strip()
SCHEDULE = None if _SCHEDULE.lower() in {"", "none"} else _SCHEDULE


@dag(
    dag_id="parallax_maintenance",
    schedule=SCHEDULE,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "parallax", "retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["parallax", "maintenance"],
    doc_md=__doc__,
)
def parallax_maintenance() -> None:
    @task(pool=WAREHOUSE_POOL)
    def compact() -> dict[str, Any]:
        """Compaction and snapshot expiry on a DuckLake; CHECKPOINT on a DuckDB file."""
        from pipeline import warehouse
        from pipeline import warehouse_backends as backends
        from pipeline.settings import load_settings

        settings = load_settings()
        with warehouse.open_warehouse(settings) as con:
            if not backends.backend_for(settings).is_lake:
                con.execute("CHECKPOINT")
                return {"checkpoint": 1}
            return backends.lake_maintenance(con, older_than_days=RETENTION_DAYS)

    compact()


parallax_maintenance()
