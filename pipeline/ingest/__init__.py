"""Ingest stage: outlets' feeds and article pages to :class:`pipeline.records.Article` records.

Nothing heavy is imported here (Airflow parses DAG files that import this package): the two
entry points import :mod:`pipeline.ingest.stage` (httpx, feedparser, trafilatura) when called.
Modules: ``outlets`` (config), ``urls`` (canonical URLs), ``http`` (bounded fetching),
``netguard`` (which addresses a fetch may reach, and its deadline), ``polite`` (robots.txt,
per-host limits, back-off), ``encoding`` (page bytes to text), ``feeds`` (feed parsing), ``text`` (HTML to plain text),
``pages`` (article extraction), ``dedupe``, ``stage`` (the two entry points).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.records import Article, FeedState, Outlet, StageResult
from pipeline.settings import IngestSettings

if TYPE_CHECKING:
    import httpx

__all__ = ["ingest_feed_files", "ingest_outlets"]


def ingest_outlets(
    outlets: list[Outlet],
    settings: IngestSettings,
    *,
    client: httpx.Client | None = None,
    progress: Callable[[str], None] | None = None,
    feed_states: Mapping[str, FeedState] | None = None,
) -> tuple[list[Article], StageResult]:
    """Fetch each outlet's feed (and pages); see :func:`pipeline.ingest.stage.ingest_outlets`."""
    from pipeline.ingest.stage import ingest_outlets as run

    return run(outlets, settings, client=client, progress=progress, feed_states=feed_states)


def ingest_feed_files(
    paths: list[Path], settings: IngestSettings
) -> tuple[list[Article], StageResult]:
    """Articles from feed files on disk; see :func:`pipeline.ingest.stage.ingest_feed_files`."""
    from pipeline.ingest.stage import ingest_feed_files as run

    return run(paths, settings)
