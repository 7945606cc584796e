"""Drop repeated articles before they reach the warehouse.

Two rules, both keeping the first occurrence:

- the same ``article_id`` (the same canonical URL: one article reached through two feeds or two
  tracking links) is one article;
- the same text (``text_sha256``) under two URLs *of the same outlet* is one article published
  twice (print and web paths, a section and a tag page). For text taken from the feed (a
  summary, often shared by live-blog updates or an outlet's boilerplate) the title must match
  too: different headlines over one summary are different items.

The same text from *different* outlets is kept: wire copy (AP, Reuters, AFP) republished by many
outlets is still each outlet's coverage, and which outlets ran a story is what comparison counts.
"""

from __future__ import annotations

import logging

from pipeline.records import Article, sha256_text

logger = logging.getLogger(__name__)


def text_key(article: Article) -> tuple[str, str]:
    """What makes two URLs of one outlet the same article (see the module docstring)."""
    if article.text_source == "feed":
        return article.outlet_id, sha256_text(f"{article.title}\n{article.text}")
    return article.outlet_id, article.text_sha256


def dedupe_articles(articles: list[Article]) -> tuple[list[Article], int]:
    """The articles without later duplicates, and how many were dropped."""
    seen_ids: set[str] = set()
    seen_texts: set[tuple[str, str]] = set()
    kept: list[Article] = []
    for article in articles:
        key = text_key(article)
        if article.article_id in seen_ids:
            logger.debug("duplicate URL dropped: %s", article.url)
            continue
        if key in seen_texts:
            logger.debug("duplicate text in %s dropped: %s", article.outlet_id, article.url)
            continue
        seen_ids.add(article.article_id)
        seen_texts.add(key)
        kept.append(article)
    return kept, len(articles) - len(kept)
