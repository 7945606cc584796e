"""Named fault points, armed only by the PARALLAX_FAULTS environment variable.

Crash safety is a claim about what happens when a process dies at an arbitrary moment, so the
tests must be able to kill a real process at a chosen moment: inside the N-th write
transaction, after a load committed but before its task reported success. Each place that
matters calls `point("name")`; with PARALLAX_FAULTS unset (always, outside tests) that is a
counter increment and one environment lookup. The variable holds comma-separated
`name[@N]=action` entries: `action` is `kill` (SIGKILL this process, no cleanup, no atexit)
or `raise` (raise InjectedFault); with `@N` only the N-th time this process reaches the point
fires, else every time.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from dataclasses import dataclass

ENV = "PARALLAX_FAULTS"
ACTIONS = ("kill", "raise")

_hits: Counter[str] = Counter()


class InjectedFault(RuntimeError):
    """Raised at a fault point armed with `raise`: stands for any failure of that step."""


@dataclass(frozen=True)
class Fault:
    point: str
    nth: int | None  # None: every time
    action: str


def parse(spec: str) -> list[Fault]:
    """The faults of a PARALLAX_FAULTS value; a malformed entry is an error, not ignored."""
    faults: list[Fault] = []
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        where, sep, action = entry.partition("=")
        name, at, nth = where.partition("@")
        if not sep or action not in ACTIONS or not name or (at and not nth.isdigit()):
            raise ValueError(
                f"{ENV}: bad entry {entry!r}; use name[@N]=action with action in {ACTIONS}"
            )
        faults.append(Fault(name.strip(), int(nth) if at else None, action))
    return faults


def point(name: str) -> None:
    """Mark a place where a test may kill or fail this process (no-op unless armed)."""
    _hits[name] += 1
    spec = os.environ.get(ENV)
    if not spec:
        return
    for fault in parse(spec):
        if fault.point != name or (fault.nth is not None and fault.nth != _hits[name]):
            continue
        if fault.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise InjectedFault(f"injected fault at {name} (hit {_hits[name]})")


def reset() -> None:
    """Forget the counts (a forked child must count its own hits, not its parent's)."""
    _hits.clear()


def hits() -> dict[str, int]:
    """How often each point was reached in this process (tests count a run's transactions)."""
    return dict(_hits)
