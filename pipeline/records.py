"""Typed records passed between stages: one frozen dataclass per warehouse table.

Stages never pass loose dicts. Ids are derived from content (see :func:`article_id_for`),
so running a stage twice over the same input produces the same records.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

# Languages the pipeline translates to English; English passes through.
TRANSLATED_LANGS: tuple[str, ...] = ("he", "ar")
SUPPORTED_LANGS: tuple[str, ...] = ("he", "ar", "en")
RTL_LANGS: frozenset[str] = frozenset({"he", "ar", "fa", "ur", "yi"})


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def article_id_for(canonical_url: str) -> str:
    """Article ids are the hash of the canonical URL: stable across runs and machines."""
    return sha256_text(canonical_url)[:16]


@dataclass(frozen=True)
class Outlet:
    outlet_id: str
    name: str
    lang: str  # the language the outlet publishes in ("he", "ar", "en", ...)
    feed_url: str
    homepage: str = ""
    country: str = ""
    fetch_pages: bool = True  # False: take the text from the feed item itself
    group: str = ""  # a label for a side of coverage ("israeli", "palestinian", "gulf", ...)
    # True only for an outlet on this machine or network (the bundled sample, test fixtures):
    # its feed, redirects and pages may reach loopback/private addresses. Items cannot opt in.
    allow_private: bool = False


@dataclass(frozen=True)
class FeedItem:
    """One entry of a parsed feed, before its page is fetched."""

    outlet_id: str
    url: str  # canonical URL
    raw_url: str  # the link as the feed gave it
    title: str
    published_at: datetime | None  # timezone-aware UTC, or None when the feed has no date
    summary: str  # plain text (HTML stripped)
    content: str  # plain text of content:encoded / Atom content, "" when absent
    feed_lang: str = ""  # language the feed declares, "" when none


@dataclass(frozen=True)
class Article:
    article_id: str
    outlet_id: str
    url: str  # canonical URL
    title: str
    published_at: datetime | None
    text: str  # main text, paragraphs separated by "\n\n"
    text_source: str  # "page" (extracted from the article page) or "feed" (feed item content)
    text_sha256: str
    lang: str = ""  # detected language ("und" when undetermined)
    lang_confidence: float = 0.0
    lang_method: str = ""  # how the language was decided: "script", "langdetect", "outlet", ...


@dataclass(frozen=True)
class Reject:
    """Input a stage could not use, with a reason code a user can query."""

    stage: str  # "ingest", "detect", ...
    outlet_id: str
    url: str
    reason: str  # short machine-readable code, e.g. "feed_malformed", "page_too_large"
    detail: str = ""


@dataclass(frozen=True)
class Segment:
    article_id: str
    seg_no: int  # position of the sentence within the article, from 0
    para_no: int  # paragraph the sentence belongs to
    text: str
    lang: str


@dataclass(frozen=True)
class Translation:
    article_id: str
    seg_no: int
    model_id: str  # registry model id, e.g. "Helsinki-NLP/opus-mt-he-en"; "identity" for English
    text_en: str
    source_sha256: str
    engine: str = "transformers"
    flagged: str = ""  # guard flag ("repetition", "empty", "length_ratio"), "" when clean
    revision: str = ""  # registry revision the model was loaded at
    decoding: str = ""  # JSON of the decoding options, so the row can be reproduced


@dataclass(frozen=True)
class Event:
    event_id: str
    label: str  # English label from the most central headline
    first_seen: datetime | None
    last_seen: datetime | None
    outlets: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()
    size: int = 0


@dataclass(frozen=True)
class EventArticle:
    event_id: str
    article_id: str
    similarity: float  # similarity to the event when the article joined (1.0 for the founder)


@dataclass(frozen=True)
class FeedState:
    """What the last fetch of an outlet's feed left to remember (table ``feed_state``).

    ``etag``/``last_modified`` make the next fetch conditional, ``body_sha256`` recognises an
    unchanged body from a server that ignores them, ``retry_after`` is when the outlet may be
    fetched again after a 429/503; the rest feeds ``parallax status``.
    """

    outlet_id: str
    feed_url: str
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: datetime | None = None
    body_sha256: str | None = None
    retry_after: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_failure_reason: str | None = None
    items_seen: int = 0  # items parsed from the feed over all fetches with a new body


@dataclass
class StageResult:
    """Counts and rejects a stage reports back to its caller (CLI, DAG, tests)."""

    stage: str
    counts: dict[str, int] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    seconds: float = 0.0
    feed_states: list[FeedState] = field(default_factory=list)  # ingest: to persist on load

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n
