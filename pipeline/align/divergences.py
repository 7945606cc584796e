"""Divergences: two outlets state different figures for the same thing ("28 days" vs "120 days").

The rule, applied to every pair of articles from different outlets of one event:

1. Candidate sentence pairs are (a) the sentence links, and (b) for the quantity kinds in
   RELAXED_KINDS (duration, count, percent, money), the MUTUAL best match among only the
   sentences of each article that state a value of that kind, when their semantic score is at
   least RELAXED_FLOOR. Outlets that report different figures phrase the sentence differently
   ("Israel presented a plan ... within four weeks" vs "US officials pressed ... over about four
   months"), so such sentences often miss the link threshold; (b) still pairs them, but only
   with each other's closest same-kind sentence.
2. For a candidate pair and each (kind, unit) both sentences state, a value counts as one side's
   own only if the OTHER ARTICLE never states it (same kind, unit and value anywhere). An outlet
   that reports both figures ("four weeks or four months") therefore diverges from neither
   side: it omits nothing and contradicts nothing.
3. If both sentences keep own values, they are paired one-to-one, closest first (by log ratio),
   and each pair is a divergence row. Values left over (a third figure) produce no row.

Bare numbers and dates come only from linked pairs (1a), where the sentences say the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.align.numbers import Value
from pipeline.align.sentences import PairScores, SegmentLink
from pipeline.records import Segment

RELAXED_KINDS: frozenset[str] = frozenset({"duration", "count", "percent", "money"})
RELAXED_FLOOR = 0.05  # centred cosine; unrelated sentences of a same-topic pair sit near 0


@dataclass(frozen=True)
class Divergence:
    event_id: str
    article_a: str  # article_a < article_b, as in segment_links
    seg_a: int
    article_b: str
    seg_b: int
    kind: str
    span_a: str  # the original text of each value
    span_b: str
    value_a: float
    value_b: float
    unit: str
    english_a: str  # English of each sentence, "" when none
    english_b: str


def _key(v: Value) -> tuple[str, str, float]:
    return (v.kind, v.unit, round(v.value, 6))


def _distance(a: float, b: float) -> float:
    if a > 0 and b > 0:
        return abs(math.log(a / b))
    return abs(a - b) + 1e6


def _mutual_best(
    pair: PairScores,
    rows: list[int],
    cols: list[int],
) -> list[tuple[int, int]]:
    if not rows or not cols:
        return []
    sub = pair.semantic[np.ix_(rows, cols)]
    out = []
    for r in range(sub.shape[0]):
        c = int(sub[r].argmax())
        if int(sub[:, c].argmax()) == r and sub[r, c] >= RELAXED_FLOOR:
            out.append((rows[r], cols[c]))
    return out


def find_divergences(
    event_id: str,
    pairs: Sequence[PairScores],
    links: Sequence[SegmentLink],
    values: Mapping[tuple[str, int], Sequence[Value]],
    event_segments: Mapping[str, Sequence[Segment]],
    english: Mapping[tuple[str, int], str],
) -> list[Divergence]:
    """Divergence rows for one event (see the module docstring for the rule)."""
    article_values: dict[str, set[tuple[str, str, float]]] = {}
    for aid, segs in event_segments.items():
        article_values[aid] = {_key(v) for s in segs for v in values.get((aid, s.seg_no), ())}
    linked: dict[tuple[str, str], set[tuple[int, int]]] = {}
    for link in links:
        linked.setdefault((link.article_a, link.article_b), set()).add((link.seg_a, link.seg_b))
    out: dict[tuple[object, ...], Divergence] = {}
    for pair in pairs:
        a, b = pair.article_a, pair.article_b
        candidates: dict[tuple[int, int], frozenset[str] | None] = {
            p: None for p in linked.get((a, b), set())
        }  # None: every kind
        for kind in sorted(RELAXED_KINDS):
            rows = [
                i
                for i, n in enumerate(pair.seg_a)
                if any(v.kind == kind for v in values.get((a, n), ()))
            ]
            cols = [
                j
                for j, n in enumerate(pair.seg_b)
                if any(v.kind == kind for v in values.get((b, n), ()))
            ]
            for i, j in _mutual_best(pair, rows, cols):
                key = (pair.seg_a[i], pair.seg_b[j])
                if key in candidates and candidates[key] is None:
                    continue
                candidates[key] = (candidates.get(key) or frozenset()) | {kind}
        for (seg_a, seg_b), kinds in sorted(candidates.items()):
            for div in _compare(
                event_id, a, seg_a, b, seg_b, kinds, values, article_values, english
            ):
                out[(a, seg_a, b, seg_b, div.kind, div.value_a, div.value_b)] = div
    return list(out.values())


def _compare(
    event_id: str,
    a: str,
    seg_a: int,
    b: str,
    seg_b: int,
    kinds: frozenset[str] | None,
    values: Mapping[tuple[str, int], Sequence[Value]],
    article_values: Mapping[str, set[tuple[str, str, float]]],
    english: Mapping[tuple[str, int], str],
) -> list[Divergence]:
    vals_a = [v for v in values.get((a, seg_a), ()) if kinds is None or v.kind in kinds]
    vals_b = [v for v in values.get((b, seg_b), ()) if kinds is None or v.kind in kinds]
    out: list[Divergence] = []
    for kind, unit in sorted(
        {(v.kind, v.unit) for v in vals_a} & {(v.kind, v.unit) for v in vals_b}
    ):
        own_a = _unique(
            [
                v
                for v in vals_a
                if (v.kind, v.unit) == (kind, unit) and _key(v) not in article_values[b]
            ]
        )
        own_b = _unique(
            [
                v
                for v in vals_b
                if (v.kind, v.unit) == (kind, unit) and _key(v) not in article_values[a]
            ]
        )
        candidates = sorted(
            (
                (_distance(x.value, y.value), ia, ib)
                for ia, x in enumerate(own_a)
                for ib, y in enumerate(own_b)
            ),
        )
        used_a: set[int] = set()
        used_b: set[int] = set()
        for _, ia, ib in candidates:
            if ia in used_a or ib in used_b:
                continue
            used_a.add(ia)
            used_b.add(ib)
            x, y = own_a[ia], own_b[ib]
            out.append(
                Divergence(
                    event_id,
                    a,
                    seg_a,
                    b,
                    seg_b,
                    kind,
                    x.text,
                    y.text,
                    x.value,
                    y.value,
                    unit,
                    english.get((a, seg_a), ""),
                    english.get((b, seg_b), ""),
                )
            )
    return out


def _unique(vals: list[Value]) -> list[Value]:
    seen: set[tuple[str, str, float]] = set()
    out = []
    for v in vals:
        if _key(v) not in seen:
            seen.add(_key(v))
            out.append(v)
    return out
