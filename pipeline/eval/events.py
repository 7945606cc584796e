"""Score event alignment against a gold mapping (`url,event`), on the warehouse or on saved feeds."""

from __future__ import annotations

import csv
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pipeline import warehouse
from pipeline.eval.metrics import PRF, bcubed_scores, pairwise_scores
from pipeline.settings import Settings

if TYPE_CHECKING:
    import duckdb
    import numpy as np

    from pipeline.records import Article


@dataclass(frozen=True)
class EventScore:
    pairwise: PRF
    bcubed: PRF
    articles: int  # gold articles found in the warehouse
    events: int  # distinct predicted events over those articles
    missing: int  # gold articles not found

    def summary_line(self) -> str:
        return (
            f"pairwise_f1={self.pairwise.f1:.3f} bcubed_f1={self.bcubed.f1:.3f} "
            f"pairwise_p={self.pairwise.precision:.3f} bcubed_p={self.bcubed.precision:.3f} "
            f"articles={self.articles} events={self.events}"
        )


def read_gold(path: Path) -> dict[str, str]:
    """`url,event` CSV; a header row is expected. Blank lines and `#` comments are skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"gold file not found: {path}")
    gold: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(row for row in fh if row.strip() and not row.startswith("#"))
        if not reader.fieldnames or {"url", "event"} - set(reader.fieldnames):
            raise ValueError(f"{path}: expected a header with columns url,event")
        for row in reader:
            if row.get(None):  # csv.DictReader puts surplus fields under None
                raise ValueError(
                    f"{path}: line {reader.line_num}: more than 2 fields; quote URLs that "
                    'contain commas ("https://example.org/0,7340,L-1,00.html")'
                )
            gold[row["url"].strip()] = row["event"].strip()
    return gold


def _canon(url: str) -> str:
    from pipeline.ingest.urls import canonicalize_url

    try:
        return canonicalize_url(url)
    except ValueError:
        return url


def _path_key(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def predicted_events(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute(
        "SELECT a.url, coalesce(ea.event_id, 'solo:' || a.article_id) FROM articles a "
        "LEFT JOIN event_articles ea USING (article_id)"
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def match_gold(
    gold: dict[str, str], predicted: dict[str, str]
) -> tuple[dict[str, str], dict[str, str], int]:
    """Pair gold URLs with warehouse URLs: by canonical URL, else by path (the sample is served
    on whatever port was free, so its host differs from the gold file's)."""
    by_url = {_canon(u): e for u, e in predicted.items()}
    by_path: dict[str, str | None] = {}
    for u, e in by_url.items():
        key = _path_key(u)
        by_path[key] = None if key in by_path else e  # ambiguous paths don't match
    g: dict[str, str] = {}
    p: dict[str, str] = {}
    missing = 0
    for url, event in gold.items():
        cu = _canon(url)
        found = by_url.get(cu)
        if found is None:
            found = by_path.get(_path_key(cu))
        if found is None:
            missing += 1
            continue
        g[cu] = event
        p[cu] = found
    return g, p, missing


SIGNALS = ("lexical", "semantic", "hybrid")


def _score(gold: dict[str, str], predicted: dict[str, str]) -> EventScore:
    g, p, missing = match_gold(gold, predicted)
    return EventScore(
        pairwise=pairwise_scores(g, p),
        bcubed=bcubed_scores(g, p),
        articles=len(g),
        events=len(set(p.values())),
        missing=missing,
    )


def score_warehouse(con: duckdb.DuckDBPyConnection, gold: dict[str, str]) -> EventScore:
    """Score the events the pipeline stored."""
    return _score(gold, predicted_events(con))


def realign(con: duckdb.DuckDBPyConnection, settings: Settings, signal: str) -> dict[str, str]:
    """Cluster the warehouse's articles from scratch with one signal, without writing anything.

    `lexical`: TF-IDF on English text only; `semantic`: multilingual vectors of the originals
    only; `hybrid`: both, as the pipeline runs.
    """
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}; choose one of {', '.join(SIGNALS)}")
    articles, _, _, event_of = _realign_inputs(con, settings, signal)
    return {a.url: event_of[a.article_id] for a in articles}


def score_signals(
    con: duckdb.DuckDBPyConnection, gold: dict[str, str], settings: Settings
) -> dict[str, EventScore]:
    """Each signal alone and the hybrid, so a change to the similarity shows what it bought."""
    return {sig: _score(gold, realign(con, settings, sig)) for sig in SIGNALS}


def align_feeds_folder(feeds_dir: Path, settings: Settings, scratch: Path) -> Settings:
    """Ingest every `*.xml` in a folder (one outlet each) into a scratch warehouse and align it."""
    from pipeline.records import Outlet
    from pipeline.run import (
        step_align,
        step_ingest_files,
        step_load_articles,
        step_segment,
        step_translate,
    )

    paths = sorted(feeds_dir.glob("*.xml"))
    if not paths:
        raise FileNotFoundError(f"no *.xml feeds in {feeds_dir}")
    scratch_settings = replace(settings, warehouse=str(scratch / "eval.duckdb"))
    articles, result = step_ingest_files(paths, scratch_settings)
    outlets = [Outlet(p.stem, p.stem, "", p.resolve().as_uri()) for p in paths]
    with warehouse.open_warehouse(scratch_settings) as con:
        step_load_articles(con, outlets, articles, result)
        step_segment(con, scratch_settings)
        step_translate(con, scratch_settings)
        step_align(con, scratch_settings)
    return scratch_settings


def evaluate(
    gold_path: Path, settings: Settings, feeds_dir: Path | None = None
) -> dict[str, EventScore]:
    """Scores of each signal (`lexical`, `semantic`, `hybrid`) and of the stored events
    (`warehouse`), on the warehouse or on a folder of saved feeds."""
    return evaluate_with_diagnostics(gold_path, settings, feeds_dir, None)[0]


def evaluate_with_diagnostics(
    gold_path: Path,
    settings: Settings,
    feeds_dir: Path | None = None,
    signal: str | None = "hybrid",
    *,
    worst: int = 10,
) -> tuple[dict[str, EventScore], Diagnostics | None]:
    """`evaluate`, plus per-language-pair figures and worst errors of `signal` (None: none)."""
    gold = read_gold(gold_path)

    def run(
        con: duckdb.DuckDBPyConnection, s: Settings
    ) -> tuple[dict[str, EventScore], Diagnostics | None]:
        scores = {**score_signals(con, gold, s), "warehouse": score_warehouse(con, gold)}
        diag = diagnose(con, gold, s, signal, worst=worst) if signal is not None else None
        return scores, diag

    if feeds_dir is None:
        with warehouse.open_warehouse(settings, read_only=True) as con:
            return run(con, settings)
    with tempfile.TemporaryDirectory(prefix="parallax-eval-") as tmp:
        scratch = align_feeds_folder(feeds_dir, settings, Path(tmp))
        with warehouse.open_warehouse(scratch, read_only=True) as con:
            return run(con, scratch)


# ---------------------------------------------------------------- diagnostics


@dataclass(frozen=True)
class PairRow:
    """Pairwise precision/recall over the article pairs of one language pair ("ar-he")."""

    langs: str
    gold_pairs: int  # pairs the gold puts in one event
    predicted_pairs: int  # pairs the clustering puts in one event
    correct: int  # both

    @property
    def precision(self) -> float:
        return self.correct / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.gold_pairs if self.gold_pairs else 1.0


@dataclass(frozen=True)
class PairError:
    """Two articles the clustering split (same gold event) or merged (different gold events),
    with the score one would get against the other alone and the threshold of their pair."""

    kind: str  # "split" or "merge"
    score: float
    threshold: float
    hours: float  # publication time apart
    a: tuple[str, str, str]  # (outlet, lang, title)
    b: tuple[str, str, str]
    gold: tuple[str, str]  # gold events of a and b


@dataclass(frozen=True)
class Diagnostics:
    signal: str
    pairs: list[PairRow]
    splits: list[PairError]  # closest to joining first
    merges: list[PairError]  # most confident first


def _pair_scorer(
    articles: list[Article],
    english: dict[str, str],
    vectors: dict[str, np.ndarray],
    settings: Settings,
) -> Callable[[Article, Article], float]:
    """Score of one article against another alone, with the stream's formula (semantic and
    lexical mapped to 0..1, mixed, less the time penalty); idf over all the articles."""
    from pipeline.align import events as ev
    from pipeline.align.lexical import DocumentFrequencies, LexicalEncoder

    encoder = LexicalEncoder()
    df = DocumentFrequencies()
    lex = {}
    for a in articles:
        text = english.get(a.article_id, "")
        if text.strip() and encoder.usable(text):
            if a.lang == "en" and a.title:
                text = f"{a.title}\n{text}"
            row = encoder.encode(text)
            if row is not None:
                lex[a.article_id] = row
                df.add(row)
    idf = df.idf()
    w_lex = min(max(settings.align.lexical_weight, 0.0), 1.0)
    decay = settings.align.time_decay_hours if settings.align.time_decay_hours > 0 else math.inf

    def score(a: Article, b: Article) -> float:
        parts: list[tuple[float, float]] = []
        va, vb = vectors.get(a.article_id), vectors.get(b.article_id)
        if va is not None and vb is not None:
            cos = float(va @ vb)
            sem = (cos - ev.SEM_FLOOR) / (ev.SEM_CEIL - ev.SEM_FLOOR)
            parts.append((min(max(sem, 0.0), 1.0), 1.0 - w_lex))
        la, lb = lex.get(a.article_id), lex.get(b.article_id)
        if la is not None and lb is not None:
            xa, xb = la.multiply(idf).tocsr(), lb.multiply(idf).tocsr()
            denom = math.sqrt(xa.multiply(xa).sum() * xb.multiply(xb).sum())
            cos_lex = float(xa.multiply(xb).sum()) / denom if denom > 0 else 0.0
            parts.append((min(max(cos_lex / ev.LEX_CEIL, 0.0), 1.0), w_lex))
        weight = sum(w for _, w in parts)
        if weight <= 0:
            return -math.inf
        mixed = sum(s * w for s, w in parts) / weight
        hours = max(0.0, _hours_apart(a, b) - ev.TIME_GRACE_HOURS)
        return mixed - ev.TIME_PENALTY * hours / decay

    return score


def _hours_apart(a: Article, b: Article) -> float:
    if a.published_at is None or b.published_at is None:
        return 0.0
    return abs((a.published_at - b.published_at).total_seconds()) / 3600.0


def diagnose(
    con: duckdb.DuckDBPyConnection,
    gold: dict[str, str],
    settings: Settings,
    signal: str = "hybrid",
    *,
    worst: int = 10,
) -> Diagnostics:
    """Per-language-pair pairwise precision/recall of one signal's clustering, and its worst
    split and merged pairs, so a user tuning thresholds on their own outlets sees where."""
    from pipeline.align.events import pair_key, resolve_thresholds, threshold_for

    articles, english, vectors, predicted = _realign_inputs(con, settings, signal)
    by_id = {a.article_id: a for a in articles}
    g, p, _ = match_gold(gold, {a.url: predicted[a.article_id] for a in articles})
    # gold URL -> article, matched as `match_gold` matches (by path where the host differs)
    _, article_of, _ = match_gold(gold, {a.url: a.article_id for a in articles})
    found = [by_id[article_of[u]] for u in sorted(g)]
    gold_url = {article_of[u]: u for u in g}
    thresholds = resolve_thresholds(dict(settings.align.thresholds))
    score = _pair_scorer(articles, english, vectors, settings)
    rows: dict[str, list[int]] = {}
    splits: list[PairError] = []
    merges: list[PairError] = []
    for i, a in enumerate(found):
        ua = gold_url[a.article_id]
        for b in found[i + 1 :]:
            ub = gold_url[b.article_id]
            same_gold, same_pred = g[ua] == g[ub], p[ua] == p[ub]
            key = pair_key(a.lang or "und", b.lang or "und")
            row = rows.setdefault(key, [0, 0, 0])
            row[0] += same_gold
            row[1] += same_pred
            row[2] += same_gold and same_pred
            if same_gold != same_pred:
                error = PairError(
                    kind="split" if same_gold else "merge",
                    score=score(a, b),
                    threshold=threshold_for(thresholds, a.lang or "und", b.lang or "und"),
                    hours=_hours_apart(a, b),
                    a=(a.outlet_id, a.lang or "und", a.title or ""),
                    b=(b.outlet_id, b.lang or "und", b.title or ""),
                    gold=(g[ua], g[ub]),
                )
                (splits if same_gold else merges).append(error)
    splits.sort(key=lambda e: -(e.score - e.threshold))
    merges.sort(key=lambda e: -(e.score - e.threshold))
    table = [PairRow(k, *v) for k, v in sorted(rows.items())]
    return Diagnostics(signal, table, splits[:worst], merges[:worst])


def _realign_inputs(
    con: duckdb.DuckDBPyConnection, settings: Settings, signal: str
) -> tuple[list[Article], dict[str, str], dict[str, np.ndarray], dict[str, str]]:
    """Articles, English, vectors and each article's event under `signal` (as `realign`)."""
    from pipeline.align.events import align_events
    from pipeline.align.vector_cache import embed_articles
    from pipeline.align.vectors import embedder_for

    articles = warehouse.fetch_articles(con)
    english = warehouse.english_text(con) if signal != "semantic" else {}
    vectors: dict[str, np.ndarray] = {}
    if signal != "lexical":
        embedder = embedder_for(settings.align)
        if embedder is not None:
            vectors = embed_articles(articles, embedder, con, store=False)
    _, assignments, _ = align_events(articles, english, vectors, settings.align)
    event_of = {a.article_id: a.event_id for a in assignments}
    return articles, english, vectors, {a.article_id: event_of[a.article_id] for a in articles}
