"""Pairwise and B-cubed scores on hand-computed examples."""

from __future__ import annotations

import pytest

from pipeline.eval.metrics import PRF, bcubed_scores, pairwise_scores

# gold: {a, b, c} one event, {d, e} another, {f} alone: 3 + 1 = 4 gold pairs
GOLD = {"a": "x", "b": "x", "c": "x", "d": "y", "e": "y", "f": "z"}


def _close(got: PRF, precision: float, recall: float) -> None:
    assert got.precision == pytest.approx(precision)
    assert got.recall == pytest.approx(recall)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    assert got.f1 == pytest.approx(f1)


def test_perfect_prediction_with_other_labels() -> None:
    pred = {"a": "1", "b": "1", "c": "1", "d": "2", "e": "2", "f": "3", "extra": "1"}
    _close(pairwise_scores(GOLD, pred), 1.0, 1.0)
    _close(bcubed_scores(GOLD, pred), 1.0, 1.0)


def test_all_in_one_cluster() -> None:
    pred = dict.fromkeys(GOLD, "one")
    # 15 predicted pairs, 4 of them right
    _close(pairwise_scores(GOLD, pred), 4 / 15, 1.0)
    # B-cubed precision: a,b,c 3/6 each, d,e 2/6 each, f 1/6 -> (9+4+1)/36
    _close(bcubed_scores(GOLD, pred), 14 / 36, 1.0)


def test_all_singletons() -> None:
    pred = {k: k for k in GOLD}
    pair = pairwise_scores(GOLD, pred)
    assert (pair.precision, pair.recall, pair.f1) == (1.0, 0.0, 0.0)
    # B-cubed recall: a,b,c 1/3 each, d,e 1/2 each, f 1 -> (1+1+1)/6
    _close(bcubed_scores(GOLD, pred), 1.0, 3 / 6)


def test_partial_split_and_merge() -> None:
    pred = {"a": "1", "b": "1", "c": "2", "d": "2", "e": "2", "f": "3"}
    # predicted pairs: ab, cd, ce, de -> 4, right: ab, de -> 2
    _close(pairwise_scores(GOLD, pred), 2 / 4, 2 / 4)
    # precision: a,b 1; c 1/3; d,e 2/3; f 1 -> (2 + 1/3 + 4/3 + 1)/6
    # recall: a,b 2/3; c 1/3; d,e 1; f 1 -> (4/3 + 1/3 + 2 + 1)/6
    _close(bcubed_scores(GOLD, pred), (2 + 1 / 3 + 4 / 3 + 1) / 6, (4 / 3 + 1 / 3 + 2 + 1) / 6)


def test_missing_items_count_as_singletons_and_are_reported() -> None:
    pred = {"a": "1", "b": "1", "d": "2", "e": "2", "f": "3"}  # c never placed
    pair = pairwise_scores(GOLD, pred)
    assert pair.missing == 1
    _close(pair, 1.0, 2 / 4)
    cubed = bcubed_scores(GOLD, pred)
    assert cubed.missing == 1
    # two missing items must not be grouped with each other
    assert pairwise_scores({"p": "x", "q": "x"}, {}).recall == 0.0


def test_empty_gold() -> None:
    assert bcubed_scores({}, {"a": "1"}) == PRF(1.0, 1.0, 1.0, 0)
    assert pairwise_scores({}, {}).f1 == 1.0
