"""Search and watches on a DuckLake (catalog in PostgreSQL, Parquet data): the same hits and the
same alerts as on a DuckDB file, exactly one alert per watch and article even with two workers
matching at once, and the BM25 index kept in a local cache beside the lake."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import warehouse
from pipeline.devservices import PgCluster
from pipeline.records import Article, Segment
from pipeline.search.filters import SearchFilters
from pipeline.settings import Settings, load_settings
from tests.test_warehouse_lake import lake_settings

EMBEDDER = "test-vectors"
TEXTS = {  # article: (lang, outlet, event, topic, sentence)
    "h1": ("he", "o-he1", "e1", 0, "כמיליון בני אדם שוהים כיום ברפיח"),
    "h2": ("he", "o-he2", "e1", 0, "הצבא נערך למבצע ורפיח מתרוקנת"),
    "h3": ("he", "o-he1", "e2", 1, "הכנסת אישרה את התקציב בקריאה ראשונה"),
    "a1": ("ar", "o-ar", "e1", 0, "استقبل النازحون في رفح الأنباء"),
    "a2": ("ar", "o-ar", "e2", 1, "أقر الكنيست الموازنة بالقراءة الأولى"),
    "n1": ("en", "o-en", "e1", 0, "Talks on Rafah resumed in Cairo"),
    "n2": ("en", "o-en", "e2", 1, "The Knesset passed the budget"),
}


def _vector(topic: int, article: str) -> list[float]:
    rng = np.random.default_rng(sum(map(ord, article)))
    v = np.eye(8)[topic] + 0.1 * rng.standard_normal(8)
    return [float(x) for x in v / np.linalg.norm(v)]


def _fill(con: Any) -> None:
    """The same small warehouse on either backend: articles, sentences, events, vectors."""
    now = datetime(2026, 11, 10, tzinfo=UTC)
    arts = [
        Article(k, outlet, f"http://127.0.0.1/{k}", k, now, t, "page", k, lang, 1.0, "test")
        for k, (lang, outlet, _, _, t) in TEXTS.items()
    ]
    warehouse.load_articles(con, arts)
    warehouse.load_segments(con, [Segment(k, 0, 0, t[4], t[0]) for k, t in TEXTS.items()])
    for k, (_, _, event, topic, _) in TEXTS.items():
        con.execute("INSERT INTO event_articles VALUES (?, ?, 1.0)", [event, k])
        con.execute(
            "INSERT INTO article_vectors VALUES (?, ?, ?, ?)", [k, EMBEDDER, k, _vector(topic, k)]
        )
    con.execute(
        "INSERT INTO events SELECT event_id, event_id, min(a.published_at), max(a.published_at), "
        "list(DISTINCT outlet_id), list(DISTINCT lang), count(*) "
        "FROM event_articles JOIN articles a USING (article_id) GROUP BY event_id"
    )


def _watch(con: Any, name: str, query: str, target: Path) -> None:
    from pipeline.watch.store import Watch, add_watch

    add_watch(
        con,
        Watch(
            name,
            query,
            mode="lexical",
            notify=(f"file:{target}",),
            created_at=datetime(2000, 1, 1, tzinfo=UTC),
        ),
    )


def _searches(con: Any, settings: Settings) -> dict[str, list[str]]:
    from pipeline.search.engine import search
    from pipeline.search.index_store import search_index
    from pipeline.search.semantic import search_semantic

    out: dict[str, list[str]] = {}
    with search_index(con, settings):
        for q in ("ברפיח", "رفح", "budget", "Knesset budget"):
            out[q] = [h.article_id for h in search(con, q, mode="lexical", limit=10).hits]
        query = np.eye(8)[0].astype(np.float32)
        for scan in (False, True):
            hits = search_semantic(
                con, query, EMBEDDER, SearchFilters(langs=("he", "ar")), scan=scan
            )
            out[f"semantic scan={scan}"] = [h.article_id for h in hits]
    return out


def test_search_and_watch_on_ducklake_as_on_a_file(pg_cluster: PgCluster, tmp_path: Path) -> None:
    from pipeline.run import step_watch

    file = load_settings(warehouse=str(tmp_path / "wh.duckdb"), runtime_dir=tmp_path / "var-file")
    lake = lake_settings(pg_cluster, tmp_path)
    got: dict[str, dict[str, Any]] = {}
    for name, settings in (("file", file), ("lake", lake)):
        sent = tmp_path / f"alerts-{name}.jsonl"
        with warehouse.open_warehouse(settings) as con:
            _watch(con, "rafah", "ברפיח", sent)
            _fill(con)
            first = step_watch(con, settings)
            second = step_watch(con, settings)  # a re-run: nothing new, nothing re-sent
            got[name] = {
                "alerts": sorted(
                    r[0] for r in con.execute("SELECT article_id FROM alerts").fetchall()
                ),
                "first": first.counts,
                "second": second.counts,
                "sent": sorted(json.loads(x)["article_id"] for x in sent.read_text().splitlines()),
                "search": _searches(con, settings),
            }
            if name == "lake":  # the BM25 index lives in the local cache, not in the lake
                from pipeline.search.index_store import INDEX_SCHEMA, cache_path
                from pipeline.warehouse_backends import lake_catalog

                assert cache_path(lake, lake_catalog(con) or "").is_file()
                schemas = con.execute(
                    "SELECT schema_name FROM duckdb_schemas() "
                    "WHERE database_name = current_database()"
                ).fetchall()
                assert not any(s.startswith("fts_") or s == INDEX_SCHEMA for (s,) in schemas)
    assert got["lake"] == got["file"]
    lake_got = got["lake"]
    assert lake_got["alerts"] == lake_got["sent"] == ["h1", "h2"]  # bare and prefixed forms
    assert lake_got["first"]["alerts"] == 2 and lake_got["second"].get("alerts", 0) == 0
    assert lake_got["second"].get("sent", 0) == 0
    found = lake_got["search"]
    assert set(found["ברפיח"]) == {"h1", "h2"} and set(found["رفح"]) == {"a1"}
    assert found["Knesset budget"][0] == "n2"
    assert found["semantic scan=False"] == found["semantic scan=True"]
    assert set(found["semantic scan=False"][:3]) == {"h1", "h2", "a1"}  # topic 0, he/ar only


def test_two_workers_alert_once_per_watch_and_article_on_ducklake(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """Two workers run the watch stage at the same moment (the second finds the index cache
    locked and builds a private copy): one alert and one notification per article in all."""
    from pipeline.run import step_watch

    lake = lake_settings(pg_cluster, tmp_path)
    sent = tmp_path / "alerts.jsonl"
    with warehouse.open_warehouse(lake) as con:
        _watch(con, "rafah", "رفح ברפיח", sent)  # all words: nothing matches
        _watch(con, "rafah-he", "רפיח", sent)
        _watch(con, "budget", "budget", sent)
        _fill(con)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with warehouse.open_warehouse(lake) as con:
                start.wait()
                step_watch(con, lake)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with warehouse.open_warehouse(lake, read_only=True) as con:
        alerts = con.execute("SELECT watch, article_id FROM alerts ORDER BY ALL").fetchall()
        pending = con.execute(
            "SELECT count(*) FROM alert_deliveries WHERE status <> 'sent'"
        ).fetchall()[0][0]
    assert alerts == [("budget", "n2"), ("rafah-he", "h1"), ("rafah-he", "h2")]
    lines = [json.loads(x) for x in sent.read_text().splitlines()]
    assert sorted((x["watch"], x["article_id"]) for x in lines) == alerts
    assert pending == 0
