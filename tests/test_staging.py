"""Staged batches: exact round trips, atomic writes, one file per run, task, outlet and try."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pipeline.records import Article, Event, Reject, Segment, sha256_text
from pipeline.staging import StagingError, batch_path, read_batch, run_dir, write_batch

JERUSALEM = timezone(timedelta(hours=3))


def _article(n: int, published_at: datetime | None) -> Article:
    text = f"פסקה ראשונה {n}.\n\nالفقرة الثانية {n}."
    return Article(
        article_id=f"a{n:03d}",
        outlet_id="haboker",
        url=f"http://127.0.0.1:8765/haboker/{n}.html",
        title=f"כותרת {n}",
        published_at=published_at,
        text=text,
        text_source="page",
        text_sha256=sha256_text(text),
        lang="he",
        lang_confidence=0.9999,
        lang_method="langdetect",
    )


def test_articles_round_trip_with_aware_datetimes(tmp_path: Path) -> None:
    arts = [
        _article(1, datetime(2025, 3, 1, 9, 30, tzinfo=UTC)),
        _article(2, datetime(2025, 3, 1, 12, 0, 15, 123456, tzinfo=JERUSALEM)),
        _article(3, None),
    ]
    path = tmp_path / "b.jsonl"
    assert write_batch(path, arts) == 3
    back = read_batch(path, Article)
    assert back == arts
    assert back[1].published_at is not None and back[1].published_at.utcoffset() == timedelta(
        hours=3
    )
    assert back[0].published_at is not None and back[0].published_at.tzinfo is not None
    # Hebrew and Arabic are stored as text, not escapes
    assert "כותרת" in path.read_text(encoding="utf-8")


def test_tuples_and_other_records_round_trip(tmp_path: Path) -> None:
    event = Event(
        "e1",
        "Label",
        datetime(2025, 3, 1, tzinfo=UTC),
        None,
        outlets=("haboker", "al-masdar"),
        langs=("he", "ar"),
        size=2,
    )
    rejects = [Reject("ingest", "haboker", "http://x/1", "page_too_large", "3 MB")]
    segments = [Segment("a1", 0, 0, "שלום.", "he"), Segment("a1", 1, 1, "مرحبا؟", "ar")]
    write_batch(tmp_path / "e.jsonl", [event])
    write_batch(tmp_path / "r.jsonl", rejects)
    write_batch(tmp_path / "s.jsonl", segments)
    assert read_batch(tmp_path / "e.jsonl", Event) == [event]
    assert read_batch(tmp_path / "r.jsonl", Reject) == rejects
    assert read_batch(tmp_path / "s.jsonl", Segment) == segments


def test_empty_batch_is_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "empty.jsonl"
    assert write_batch(path, []) == 0
    assert path.is_file() and read_batch(path, Reject) == []


def test_naive_datetime_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    with pytest.raises(StagingError, match="naive"):
        write_batch(path, [_article(1, datetime(2025, 3, 1, 9, 30))])
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_the_previous_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    good = [_article(1, None)]
    write_batch(path, good)

    def records() -> Iterator[Article]:
        yield _article(2, None)
        raise RuntimeError("task killed mid-write")

    with pytest.raises(RuntimeError):
        write_batch(path, records())
    assert read_batch(path, Article) == good
    assert [p.name for p in tmp_path.iterdir()] == ["b.jsonl"]


def test_non_dataclass_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StagingError, match="dataclass"):
        write_batch(tmp_path / "x.jsonl", [{"article_id": "a"}])


def test_corrupt_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    write_batch(path, [Reject("ingest", "o", "u", "r")])
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"stage": "ingest"}\n')
    with pytest.raises(StagingError, match=r"b\.jsonl:2"):
        read_batch(path, Reject)


def test_timezone_less_staged_datetime_is_refused(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Stamp:
        at: datetime

    path = tmp_path / "t.jsonl"
    path.write_text('{"at": "2025-03-01T09:30:00"}\n', encoding="utf-8")
    with pytest.raises(StagingError, match="timezone"):
        read_batch(path, Stamp)


def test_paths_differ_by_run_try_outlet_and_kind(tmp_path: Path) -> None:
    base = {
        "dag_id": "parallax_ingest",
        "run_id": "scheduled__2025-03-01T09:30:00+00:00",
        "task_id": "ingest_outlet",
        "kind": "articles",
        "try_number": 1,
        "key": "haboker",
    }
    first = batch_path(tmp_path, **base)  # type: ignore[arg-type]
    variants = [
        {**base, "try_number": 2},
        {**base, "run_id": "manual__2025-03-01T09:30:00+00:00"},
        {**base, "key": "al-masdar"},
        {**base, "kind": "rejects"},
    ]
    paths = {first} | {batch_path(tmp_path, **v) for v in variants}  # type: ignore[arg-type]
    assert len(paths) == 5
    assert first == batch_path(tmp_path, **base)  # type: ignore[arg-type]
    assert first.parent == run_dir(tmp_path, "parallax_ingest", base["run_id"])  # type: ignore[arg-type]
    # file names carry no characters that need quoting on any filesystem
    assert all(c.isalnum() or c in "._-" for c in first.name)
    assert first.is_relative_to(tmp_path)
    # ids that differ only in unsafe characters still get distinct folders
    assert run_dir(tmp_path, "d", "a:b") != run_dir(tmp_path, "d", "a+b")
