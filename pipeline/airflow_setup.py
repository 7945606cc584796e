"""Airflow pools the Parallax DAGs rely on, created through Airflow's own pool model.

`parallax_warehouse` has one slot per concurrent writer the warehouse takes: one for a DuckDB file
(DuckDB allows one writing process per file, so every task that writes the warehouse queues on
it), `warehouse_writers` for a DuckLake on PostgreSQL. `parallax_translate` bounds how many translation tasks run at
once (model memory, CPU threads or GPUs). Needs an initialised Airflow metadata database
(`airflow db migrate`) and AIRFLOW_HOME set as for the scheduler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int
    description: str


def pool_specs(
    translate_pool_slots: int | None = None, *, settings: Settings | None = None
) -> list[PoolSpec]:
    """The pools and their sizes; the warehouse pool's from the backend (1 for a DuckDB file)."""
    from pipeline.settings import load_settings
    from pipeline.warehouse_backends import backend_for

    settings = settings or load_settings()
    cfg = settings.airflow
    slots = cfg.translate_pool_slots if translate_pool_slots is None else translate_pool_slots
    if slots < 1:
        raise ValueError(f"the translate pool needs at least one slot, got {slots}")
    backend = backend_for(settings)
    what = "DuckLake" if backend.is_lake else "DuckDB file"
    return [
        PoolSpec(
            cfg.warehouse_pool,
            backend.writers,
            f"Parallax: concurrent writers of the {what} warehouse",
        ),
        PoolSpec(cfg.translate_pool, slots, "Parallax: concurrent translation tasks"),
    ]


def ensure_pools(translate_pool_slots: int | None = None) -> list[PoolSpec]:
    """Create or resize the Parallax pools in Airflow's metadata database; safe to repeat."""
    from airflow.models.pool import Pool

    specs = pool_specs(translate_pool_slots)
    for spec in specs:
        Pool.create_or_update_pool(
            name=spec.name,
            slots=spec.slots,
            description=spec.description,
            include_deferred=False,
        )
        log.info("pool %s: %d slot(s)", spec.name, spec.slots)
    return specs


def worker_hostname() -> str:
    """The name a task instance records as its host (`[core] hostname_callable`): the worker's
    PARALLAX_WORKER_NAME when set, so two Celery workers on one machine are told apart."""
    import os
    import socket

    return os.environ.get("PARALLAX_WORKER_NAME", "").strip() or socket.getfqdn()


def main() -> None:
    """`python -m pipeline.airflow_setup`: create the pools (used by scripts/airflow-local.sh)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for spec in ensure_pools():
        log.info("ok: %s (%d)", spec.name, spec.slots)


if __name__ == "__main__":
    main()
