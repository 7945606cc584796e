"""Search quality on a query set with gold events: recall@10 and MRR per query → document language.

A query lists the gold events it is about; the relevant documents in language L are the
warehouse articles in L whose gold event (samples/gold_events.csv) is one of them. Each query
is run once per document language with that language as the filter, for each mode, so the
table shows e.g. how well an English query finds Hebrew coverage.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

from pipeline.search.engine import search
from pipeline.search.filters import SearchFilters
from pipeline.search.semantic import embed_query

if TYPE_CHECKING:
    import duckdb

    from pipeline.align.vectors import Embedder

K = 10
MODE_NAMES = {"lexical": "lexical", "semantic": "semantic", "hybrid": "fused"}


class QueryFileError(ValueError):
    """The query set file is missing or malformed (the message says where)."""


@dataclass(frozen=True)
class EvalQuery:
    id: str
    lang: str
    text: str
    events: tuple[str, ...]
    kind: str = ""


def load_queries(path: Path) -> list[EvalQuery]:
    if not path.is_file():
        raise QueryFileError(f"query set not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise QueryFileError(f"{path}: {exc}") from exc
    out: list[EvalQuery] = []
    for i, q in enumerate(data.get("query", []), start=1):
        missing = {"id", "lang", "text", "events"} - set(q)
        if missing:
            raise QueryFileError(f"{path}: query #{i} lacks {', '.join(sorted(missing))}")
        out.append(EvalQuery(q["id"], q["lang"], q["text"], tuple(q["events"]), q.get("kind", "")))
    if not out:
        raise QueryFileError(f"{path}: no [[query]] entries")
    return out


@dataclass
class Cell:
    queries: int = 0
    recall: dict[str, float] = field(default_factory=dict)  # mode -> mean recall@10
    mrr: dict[str, float] = field(default_factory=dict)


@dataclass
class SearchEvalReport:
    modes: list[str]
    cells: dict[tuple[str, str], Cell]
    overall_recall: dict[str, float]
    overall_mrr: dict[str, float]
    missing_urls: int

    def summary_line(self) -> str:
        return " ".join(
            f"{m}_recall10={self.overall_recall[m]:.3f} {m}_mrr={self.overall_mrr[m]:.3f}"
            for m in self.modes
        )


def _gold_articles(
    con: duckdb.DuckDBPyConnection, gold_path: Path
) -> tuple[dict[str, tuple[str, str]], int]:
    """article_id -> (gold event, lang), matched on URL path (the sample's port varies)."""
    from pipeline.eval.events import read_gold

    gold = {urlsplit(u).path: e for u, e in read_gold(gold_path).items()}
    found: dict[str, tuple[str, str]] = {}
    for aid, url, lang in con.execute("SELECT article_id, url, lang FROM articles").fetchall():
        event = gold.get(urlsplit(url).path)
        if event is not None:
            found[aid] = (event, lang)
    return found, len(gold) - len(found)


class _QueryCache:
    """The embedder with query vectors memoised: each query is run per language and mode."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self.name = embedder.name
        self.dim = embedder.dim
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._embedder.embed(texts)

    def embed_query(self, text: str) -> np.ndarray:
        if text not in self._cache:
            self._cache[text] = embed_query(self._embedder, text)
        return self._cache[text]


def evaluate_search(
    con: duckdb.DuckDBPyConnection,
    queries: list[EvalQuery],
    gold_path: Path,
    embedder: Embedder | None,
) -> SearchEvalReport:
    articles, missing = _gold_articles(con, gold_path)
    if embedder is not None:
        embedder = _QueryCache(embedder)
    modes = ["lexical"] + (["semantic", "hybrid"] if embedder is not None else [])
    doc_langs = sorted({lang for _, lang in articles.values()})
    sums: dict[tuple[str, str], Cell] = {}
    totals_r = dict.fromkeys(modes, 0.0)
    totals_m = dict.fromkeys(modes, 0.0)
    runs = 0
    for q in queries:
        for dl in doc_langs:
            relevant = {a for a, (e, lang) in articles.items() if lang == dl and e in q.events}
            if not relevant:
                continue
            cell = sums.setdefault((q.lang, dl), Cell())
            cell.queries += 1
            runs += 1
            for mode in modes:
                result = search(
                    con,
                    q.text,
                    mode=mode,
                    filters=SearchFilters(langs=(dl,)),
                    limit=K,
                    embedder=embedder,
                    with_aligned=False,
                )
                ranked = [h.article_id for h in result.hits][:K]
                recall = len(relevant.intersection(ranked)) / len(relevant)
                rr = next((1.0 / i for i, a in enumerate(ranked, 1) if a in relevant), 0.0)
                cell.recall[mode] = cell.recall.get(mode, 0.0) + recall
                cell.mrr[mode] = cell.mrr.get(mode, 0.0) + rr
                totals_r[mode] += recall
                totals_m[mode] += rr
    for cell in sums.values():
        for mode in modes:
            cell.recall[mode] /= cell.queries
            cell.mrr[mode] /= cell.queries
    names = [MODE_NAMES[m] for m in modes]

    def renamed(d: dict[str, float]) -> dict[str, float]:
        return {MODE_NAMES[m]: v for m, v in d.items()}

    for cell in sums.values():
        cell.recall = renamed(cell.recall)
        cell.mrr = renamed(cell.mrr)
    n = max(runs, 1)
    return SearchEvalReport(
        names,
        sums,
        {MODE_NAMES[m]: totals_r[m] / n for m in modes},
        {MODE_NAMES[m]: totals_m[m] / n for m in modes},
        missing,
    )
