"""Main text, title and date of an article page, with trafilatura.

trafilatura returns ``None`` for a page it cannot use; here that becomes an :class:`ExtractError`
with a reason, so the caller can fall back to the feed's text and record why.
"""

from __future__ import annotations

import functools
import logging
from configparser import ConfigParser
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.ingest.text import normalise_paragraphs

logger = logging.getLogger(__name__)

# Bounded work on hostile pages: trafilatura gives up on trees with more elements than this.
MAX_TREE_SIZE = 200_000


class ExtractError(Exception):
    """No article text could be extracted. ``reason``: "no_text" or "extractor_error"."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Extracted:
    title: str
    text: str  # paragraphs separated by "\n\n"
    published_at: datetime | None  # timezone-aware UTC


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        logger.debug("unparseable page date %r", value)
        return None
    if parsed.tzinfo is None:  # a bare date or a naive time: read as UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@functools.cache
def _config() -> ConfigParser:
    """trafilatura's default settings with a cap on the tree size (its default has none)."""
    from trafilatura.settings import use_config

    config = use_config()
    config.set("DEFAULT", "MAX_TREE_SIZE", str(MAX_TREE_SIZE))
    config.set("DEFAULT", "EXTENSIVE_DATE_SEARCH", "off")
    return config


def extract_article(html: str, url: str) -> Extracted:
    """Article text (boilerplate, navigation and comments removed), title and publication date."""
    import trafilatura

    try:
        doc = trafilatura.bare_extraction(
            html,
            url=url,
            with_metadata=True,
            include_comments=False,
            include_tables=False,
            include_images=False,
            favor_precision=True,
            config=_config(),
            date_extraction_params={
                "extensive_search": False,
                "original_date": True,
                "outputformat": "%Y-%m-%dT%H:%M:%S%z",
            },
        )
    except Exception as exc:  # lxml/trafilatura errors on hostile markup must not stop a batch
        raise ExtractError("extractor_error", f"{type(exc).__name__}: {exc}"[:500]) from exc
    if doc is None:
        raise ExtractError("no_text", f"trafilatura found no article in {url}")
    raw = getattr(doc, "text", None) or ""
    # trafilatura puts one paragraph per line; the pipeline separates them with blank lines.
    text = normalise_paragraphs(raw.replace("\n", "\n\n"))
    title = normalise_paragraphs(getattr(doc, "title", None) or "").replace("\n\n", " ")
    paragraphs = text.split("\n\n")
    if title and len(paragraphs) > 1 and paragraphs[0] == title:
        text = "\n\n".join(paragraphs[1:])  # the headline repeated as the first paragraph
    if not text:
        raise ExtractError("no_text", f"trafilatura found no article text in {url}")
    return Extracted(title=title, text=text, published_at=_parse_date(getattr(doc, "date", None)))
