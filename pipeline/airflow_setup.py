"""Airflow pools the Parallax DAGs rely on, created through Airflow's own pool model.

`parallax_warehouse` has one slot: DuckDB allows one writing process per file, so every task that
writes the warehouse queues on it. `parallax_translate` bounds how many translation tasks run at
once (model memory, CPU threads or GPUs). Needs an initialised Airflow metadata database
(`airflow db migrate`) and AIRFLOW_HOME set as for the scheduler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int
    description: str


def pool_specs(translate_pool_slots: int | None = None) -> list[PoolSpec]:
    """The pools and their sizes; the warehouse pool always has exactly one slot."""
    from pipeline.settings import load_settings

    cfg = load_settings().airflow
    slots = cfg.translate_pool_slots if translate_pool_slots is None else translate_pool_slots
    if slots < 1:
        raise ValueError(f"the translate pool needs at least one slot, got {slots}")
    return [
        PoolSpec(cfg.warehouse_pool, 1, "Parallax: one writer of the DuckDB warehouse at a time"),
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


def main() -> None:
    """`python -m pipeline.airflow_setup`: create the pools (used by scripts/airflow-local.sh)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for spec in ensure_pools():
        log.info("ok: %s (%d)", spec.name, spec.slots)


if __name__ == "__main__":
    main()
