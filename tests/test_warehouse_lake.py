"""The warehouse as a DuckLake (catalog in PostgreSQL, Parquet data): the same pipeline gives the
same rows as on a DuckDB file, and concurrent writers lose no commit and duplicate no key."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline import warehouse
from pipeline import warehouse_backends as backends
from pipeline.devservices import PgCluster
from pipeline.records import Article, Segment, sha256_text
from pipeline.settings import Settings, load_settings
from tests.tables import table_rows


def lake_settings(cluster: PgCluster, tmp: Path, **overrides: Any) -> Settings:
    db = f"lake_{uuid.uuid4().hex[:8]}"
    dsn = cluster.create_database(db)
    return load_settings(
        warehouse=f"ducklake:postgres:{dsn}",
        warehouse_data_path=str(tmp / "lake-data"),
        runtime_dir=tmp / "var",
        staging_dir=tmp / "var" / "staging",
        **overrides,
    )


def same_rows(table: str, a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    """The rows of `table` on both sides are the same (one place to relax it if ever needed)."""
    return a == b


def test_ducklake_ddl_drops_only_what_ducklake_cannot_store() -> None:
    sql = (
        "CREATE TABLE t (a VARCHAR PRIMARY KEY, -- a (comment) CHECK\n"
        " k VARCHAR NOT NULL CHECK (k IN ('x', 'y')), n INTEGER DEFAULT 1,\n"
        " PRIMARY KEY (a, k), CHECK (a < k));\nCREATE INDEX i ON t (k);\n"
        "ALTER TABLE t ADD COLUMN IF NOT EXISTS z VARCHAR;"
    )
    out = backends.ducklake_ddl(sql)
    assert "PRIMARY" not in out and "CHECK" not in out and "INDEX" not in out
    assert "k VARCHAR NOT NULL" in out and "n INTEGER DEFAULT 1" in out and "ADD COLUMN" in out
    assert warehouse.natural_key("segments") == ("article_id", "seg_no")
    assert warehouse.natural_key("translations") == ("article_id", "seg_no", "model_id")


def test_backend_and_pool_size_from_settings(tmp_path: Path) -> None:
    from pipeline.airflow_setup import pool_specs

    file = backends.backend_for(load_settings(warehouse=str(tmp_path / "w.duckdb")))
    assert (file.kind, file.writers) == ("duckdb", 1)
    lake = load_settings(warehouse="ducklake:postgres:dbname=x host=127.0.0.1", warehouse_writers=3)
    assert backends.backend_for(lake).writers == 3
    with pytest.raises(backends.WarehouseConfigError, match="postgres"):
        backends.backend_for(load_settings(warehouse="ducklake:sqlite:x.db"))
    assert pool_specs(settings=lake)[0].slots == 3
    assert pool_specs(settings=load_settings(warehouse=str(tmp_path / "w.duckdb")))[0].slots == 1


def test_same_pipeline_same_rows_on_both_backends(
    pg_cluster: PgCluster, tmp_path: Path, sample_server: str, tiny_models_dir: Path
) -> None:
    """Ingest the bundled sample once, then load, segment, translate, align and link it into a
    DuckDB file and into a DuckLake: every table holds the same rows. A second load into the
    lake changes nothing (idempotent by natural key)."""
    from pipeline.run import (
        step_align,
        step_ingest,
        step_link,
        step_load_articles,
        step_segment,
        step_translate,
    )
    from tests.test_end_to_end import _outlets

    common: dict[str, Any] = {"models_dir": tiny_models_dir, "translate": {"max_new_tokens": 8}}
    file_settings = load_settings(
        warehouse=str(tmp_path / "wh.duckdb"), runtime_dir=tmp_path / "var", **common
    )
    lake = lake_settings(pg_cluster, tmp_path, **common)
    # one outlet per language keeps it short; events still span outlets and languages
    keep = {"haboker", "al-masdar", "daily-ledger"}
    outlets = [o for o in _outlets(sample_server) if o.outlet_id in keep]
    articles, ingest = step_ingest(outlets, file_settings)
    assert len(articles) >= 15
    got = {}
    for name, settings in (("file", file_settings), ("lake", lake)):
        with warehouse.open_warehouse(settings) as con:
            step_load_articles(
                con, outlets, articles, replace(ingest, rejects=list(ingest.rejects))
            )
            step_segment(con, settings)
            step_translate(con, settings)
            step_align(con, settings)
            step_link(con, settings)
            got[name] = table_rows(con)
    assert set(got["file"]) == set(got["lake"])
    for table in got["file"]:
        assert same_rows(table, got["lake"][table], got["file"][table]), table
    assert got["lake"]["events"] and got["lake"]["translations"] and got["lake"]["segment_links"]
    with warehouse.open_warehouse(lake) as con:  # a second load of the same batch: no change
        step_load_articles(con, outlets, articles, replace(ingest, rejects=list(ingest.rejects)))
        step_segment(con, lake)
        assert table_rows(con) == got["lake"]
    with warehouse.open_warehouse(lake, read_only=True) as con:
        assert warehouse.table_counts(con, ["articles"])["articles"] == len(got["file"]["articles"])


def _article(n: int) -> Article:
    text = f"Synthetic article {n}. It has two sentences about event {n % 7}."
    return Article(
        article_id=f"a{n:05d}",
        outlet_id=f"o{n % 5}",
        url=f"http://127.0.0.1/{n}",
        title=f"title {n}",
        published_at=datetime(2025, 1, 1, tzinfo=UTC),
        text=text,
        text_source="page",
        text_sha256=sha256_text(text),
        lang="en",
        lang_confidence=1.0,
        lang_method="script",
    )


def test_concurrent_writers_lose_no_commit_and_duplicate_no_key(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """Four writers load overlapping batches (each article in two of them) at the same time."""
    settings = lake_settings(pg_cluster, tmp_path)
    with warehouse.open_warehouse(settings):
        pass  # schema first, as `airflow db migrate` comes before the workers
    arts = [_article(n) for n in range(120)]
    batches = [arts[i * 30 : i * 30 + 60] for i in range(4)]  # 0-59, 30-89, 60-119, 90-119
    errors: list[BaseException] = []

    def writer(batch: list[Article]) -> None:
        try:
            with warehouse.open_warehouse(settings) as con:
                for i in range(0, len(batch), 15):
                    part = batch[i : i + 15]
                    warehouse.load_articles(con, part)
                    warehouse.load_segments(
                        con, [Segment(a.article_id, 0, 0, a.text, "en") for a in part]
                    )
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with warehouse.open_warehouse(settings, read_only=True) as con:
        for table, key in (("articles", "article_id"), ("segments", "article_id, seg_no")):
            n, distinct = con.execute(
                f"SELECT count(*), count(DISTINCT ({key})) FROM {table}"
            ).fetchall()[0]
            assert (n, distinct) == (120, 120), table
        assert con.execute("SELECT count(*) FROM article_versions").fetchall()[0][0] == 120


def test_lake_maintenance_compacts_and_expires(pg_cluster: PgCluster, tmp_path: Path) -> None:
    """What the maintenance DAG runs: after many small loads, fewer files and one snapshot."""
    settings = lake_settings(pg_cluster, tmp_path)
    with warehouse.open_warehouse(settings) as con:
        for n in range(0, 60, 12):  # five loads of 12 rows: past the 10-row inlining limit
            warehouse.load_articles(con, [_article(i) for i in range(n, n + 12)])
        snapshots = con.execute(
            f"SELECT count(*) FROM ducklake_snapshots('{backends.LAKE_ALIAS}')"
        ).fetchall()[0][0]
        stats = backends.lake_maintenance(con, older_than_days=0)
        assert stats["files_after"] < stats["files_before"]
        assert stats["expired_snapshots"] >= snapshots - 1  # (flush and merge commit too)
        left = con.execute(
            f"SELECT count(*) FROM ducklake_snapshots('{backends.LAKE_ALIAS}')"
        ).fetchall()[0][0]
        assert left == 1
        assert warehouse.table_counts(con, ["articles"])["articles"] == 60
