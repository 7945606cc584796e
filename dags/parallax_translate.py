"""Translate pending Hebrew and Arabic segments to English whenever new articles are loaded.

Split so the DuckDB file is held only for short reads and writes: `stage_pending` reads the
pending segments and the cached translations of their sentences (warehouse pool), `translate` runs
the models with no database open (its own pool, sized to the machine or GPU workers), and
`load` writes translations and new cache entries back (warehouse pool). A model missing from
the models folder leaves its segments pending, never fails the run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, dag, get_current_context, task

from pipeline.settings import load_settings

_AIRFLOW = load_settings().airflow  # schedule, pools, queue: light to read at parse time

ARTICLES = Asset("parallax://warehouse/articles")
TRANSLATIONS = Asset("parallax://warehouse/translations")
WAREHOUSE_POOL = _AIRFLOW.warehouse_pool
TRANSLATE_POOL = _AIRFLOW.translate_pool
TRANSLATE_QUEUE = _AIRFLOW.translate_queue

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "parallax",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def _staging_path(kind: str) -> Any:
    from pipeline import staging
    from pipeline.settings import load_settings

    ti = get_current_context()["ti"]
    return staging.batch_path(
        load_settings().staging_dir,
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        try_number=ti.try_number,
        kind=kind,
    )


@dag(
    dag_id="parallax_translate",
    schedule=[ARTICLES],
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["parallax", "translate"],
    doc_md=__doc__,
)
def parallax_translate() -> None:
    @task(pool=WAREHOUSE_POOL)
    def stage_pending() -> dict[str, Any]:
        """Stage segments without a translation and the cache entries for their sentences."""
        from pipeline import staging, warehouse
        from pipeline.records import sha256_text
        from pipeline.settings import load_settings
        from pipeline.translate.cache import CacheRow

        settings = load_settings()
        with warehouse.open_warehouse(settings) as con:
            segments = warehouse.segments_without_translation(con)
            hashes = sorted({sha256_text(s.text) for s in segments})
            rows = con.execute(
                "SELECT model_id, source_sha256, source_text, text_en, engine "
                "FROM translation_cache WHERE list_contains(?, source_sha256)",
                [hashes],
            ).fetchall()
        seg_path, cache_path = _staging_path("segments"), _staging_path("cache")
        staging.write_batch(seg_path, segments)
        staging.write_batch(cache_path, [CacheRow(*r) for r in rows])
        return {"segments": str(seg_path), "cache": str(cache_path), "pending": len(segments)}

    @task(pool=TRANSLATE_POOL, queue=TRANSLATE_QUEUE)
    def translate(pending: dict[str, Any]) -> dict[str, Any]:
        """Run the models over the staged segments; no database is open here."""
        from pathlib import Path

        from pipeline import staging
        from pipeline.records import Segment
        from pipeline.settings import load_settings
        from pipeline.translate import translate_segments
        from pipeline.translate.cache import CacheRow, SnapshotCache

        settings = load_settings()
        segments = staging.read_batch(Path(pending["segments"]), Segment)
        staged = staging.read_batch(Path(pending["cache"]), CacheRow)
        cache = SnapshotCache((r.model_id, r.source_sha256, r.text_en) for r in staged)
        translations, result = translate_segments(segments, settings, cache)
        tr_path, cache_path = _staging_path("translations"), _staging_path("cache")
        staging.write_batch(tr_path, translations)
        staging.write_batch(cache_path, cache.take_new())
        return {"translations": str(tr_path), "cache": str(cache_path), "counts": result.counts}

    @task(pool=WAREHOUSE_POOL, outlets=[TRANSLATIONS])
    def load(done: dict[str, Any]) -> dict[str, int]:
        """Write translations and new cache entries; both are upserts by their natural keys."""
        from pathlib import Path

        from pipeline import staging, warehouse
        from pipeline.records import Translation
        from pipeline.settings import load_settings
        from pipeline.translate.cache import CacheRow

        settings = load_settings()
        translations = staging.read_batch(Path(done["translations"]), Translation)
        new_cache = staging.read_batch(Path(done["cache"]), CacheRow)
        with warehouse.open_warehouse(settings, purpose="translate load") as con:
            # one transaction: a crash between cache and rows would make a re-run's rows
            # cache hits, unlike a clean run's
            warehouse.load_translation_chunk(con, translations, new_cache)
            pending = int(con.execute("SELECT count(*) FROM pending_translations").fetchall()[0][0])
        return {"translations": len(translations), "cached": len(new_cache), "pending": pending}

    load(translate(stage_pending()))  # type: ignore[arg-type]


parallax_translate()
