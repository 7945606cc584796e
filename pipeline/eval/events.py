"""Score event alignment against a gold mapping (`url,event`), on the warehouse or on saved feeds."""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pipeline import warehouse
from pipeline.eval.metrics import PRF, bcubed_scores, pairwise_scores
from pipeline.settings import Settings

if TYPE_CHECKING:
    import duckdb


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
    from pipeline.align.events import align_events
    from pipeline.align.vector_cache import embed_articles
    from pipeline.align.vectors import get_embedder

    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}; choose one of {', '.join(SIGNALS)}")
    articles = warehouse.fetch_articles(con)
    english = warehouse.english_text(con) if signal != "semantic" else {}
    vectors = {}
    if signal != "lexical":
        embedder = get_embedder(settings.align.embedder)
        if embedder is not None:
            vectors = embed_articles(articles, embedder, con, store=False)
    _, assignments, _ = align_events(articles, english, vectors, settings.align)
    event_of = {a.article_id: a.event_id for a in assignments}
    return {a.url: event_of.get(a.article_id, "solo:" + a.article_id) for a in articles}


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
    gold = read_gold(gold_path)
    if feeds_dir is None:
        with warehouse.open_warehouse(settings, read_only=True) as con:
            return {**score_signals(con, gold, settings), "warehouse": score_warehouse(con, gold)}
    with tempfile.TemporaryDirectory(prefix="parallax-eval-") as tmp:
        scratch = align_feeds_folder(feeds_dir, settings, Path(tmp))
        with warehouse.open_warehouse(scratch, read_only=True) as con:
            return {**score_signals(con, gold, scratch), "warehouse": score_warehouse(con, gold)}
