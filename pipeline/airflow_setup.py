"""Airflow pools the Parallax DAGs rely on, created through Airflow's own pool model.

`parallax_warehouse` has one slot: DuckDB allows one writing process per file, so every task that
writes the warehouse queues on it. `parallax_translate` bounds how many translation tasks run at
once (model memory, CPU threads or GPUs). Needs an initialised Airflow metadata database
(`airflow db migrate`) and AIRFLOW_HOME set as for the scheduler.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)

WAREHOUSE_POOL = "parallax_warehouse"
TRANSLATE_POOL = "parallax_translate"
DEFAULT_TRANSLATE_SLOTS = 1


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int
    description: str


def translate_slots() -> int:
    """Slots of the translate pool: PARALLAX_TRANSLATE_POOL_SLOTS, else one."""
    raw = os.environ.get("PARALLAX_TRANSLATE_POOL_SLOTS", "")
    if not raw.strip():
        return DEFAULT_TRANSLATE_SLOTS
    try:
        slots = int(raw)
    except ValueError as exc:
        raise ValueError(f"PARALLAX_TRANSLATE_POOL_SLOTS must be an integer, got {raw!r}") from exc
    if slots < 1:
        raise ValueError(f"PARALLAX_TRANSLATE_POOL_SLOTS must be at least 1, got {slots}")
    return slots


def pool_specs(translate_pool_slots: int | None = None) -> list[PoolSpec]:
    """The pools and their sizes; the warehouse pool always has exactly one slot."""
    slots = translate_slots() if translate_pool_slots is None else translate_pool_slots
    if slots < 1:
        raise ValueError(f"the translate pool needs at least one slot, got {slots}")
    return [
        PoolSpec(WAREHOUSE_POOL, 1, "Parallax: one writer of the DuckDB warehouse at a time"),
        PoolSpec(TRANSLATE_POOL, slots, "Parallax: concurrent translation tasks"),
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
