"""Reciprocal-rank fusion: a rank-only combination, so BM25 and cosine need no common scale."""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60  # the constant of Cormack et al. (2009); damps the weight of the very first ranks


def rrf(rankings: Sequence[Sequence[str]], *, k: int = RRF_K) -> dict[str, float]:
    """Fused score per id: sum over rankings of 1 / (k + rank), rank starting at 1."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return scores


def ranked(scores: dict[str, float]) -> list[str]:
    """Ids by fused score descending, ties by id (deterministic)."""
    return sorted(scores, key=lambda key: (-scores[key], key))
