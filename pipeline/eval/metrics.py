"""Clustering scores for event alignment: pairwise and B-cubed precision/recall/F1.

Both score the items of the gold mapping only. A gold item the prediction lacks counts as a
singleton of its own (an article the pipeline never placed cannot share an event), and the
number of such items is reported in `PRF.missing` so a low score can be told from lost input.
Predicted items that are not in gold are ignored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

_MISSING_PREFIX = "\x00missing:"  # cannot collide with a real label read from CSV or SQL


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float
    missing: int = 0  # gold items absent from the prediction (scored as singletons)


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _aligned(gold: dict[str, str], pred: dict[str, str]) -> tuple[list[str], list[str], int]:
    """Gold and predicted labels for every gold item, in the same order."""
    items = sorted(gold)
    missing = sum(1 for i in items if i not in pred)
    labels = [pred[i] if i in pred else _MISSING_PREFIX + i for i in items]
    return [gold[i] for i in items], labels, missing


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise_scores(gold: dict[str, str], pred: dict[str, str]) -> PRF:
    """Precision and recall over item pairs placed together.

    With no predicted pairs precision is 1.0 (nothing wrongly joined); with no gold pairs
    recall is 1.0 (nothing to find): the F1 then still falls when the other side is wrong.
    """
    g, p, missing = _aligned(gold, pred)
    together = sum(_pairs(n) for n in Counter(zip(g, p, strict=True)).values())
    gold_pairs = sum(_pairs(n) for n in Counter(g).values())
    pred_pairs = sum(_pairs(n) for n in Counter(p).values())
    precision = together / pred_pairs if pred_pairs else 1.0
    recall = together / gold_pairs if gold_pairs else 1.0
    return PRF(precision, recall, _f1(precision, recall), missing)


def bcubed_scores(gold: dict[str, str], pred: dict[str, str]) -> PRF:
    """B-cubed: per item, the share of its predicted cluster that shares its gold event
    (precision) and the share of its gold event found in its predicted cluster (recall)."""
    g, p, missing = _aligned(gold, pred)
    if not g:
        return PRF(1.0, 1.0, 1.0, missing)
    cell = Counter(zip(g, p, strict=True))
    gold_size = Counter(g)
    pred_size = Counter(p)
    precision = sum(cell[(a, b)] / pred_size[b] for a, b in zip(g, p, strict=True)) / len(g)
    recall = sum(cell[(a, b)] / gold_size[a] for a, b in zip(g, p, strict=True)) / len(g)
    return PRF(precision, recall, _f1(precision, recall), missing)
