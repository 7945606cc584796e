"""The ingest stage end to end against outlets served from 127.0.0.1, and from feed files."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.ingest import ingest_feed_files, ingest_outlets
from pipeline.ingest.dedupe import dedupe_articles
from pipeline.records import Article, Outlet, article_id_for, sha256_text
from pipeline.settings import IngestSettings
from tests.fixtures.ingest.server import Route, Served, serve

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
SETTINGS = IngestSettings(connect_timeout_s=1.0, read_timeout_s=2.0, max_page_bytes=50_000)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def site() -> Iterator[Served]:
    html = {"Content-Type": "text/html"}
    routes = {
        "/rss.xml": Route(fixture("rss.xml"), headers={"Content-Type": "application/rss+xml"}),
        "/home.html": Route(
            fixture("not-a-feed.html"), headers={"Content-Type": "text/html; charset=utf-8"}
        ),
        "/atom.xml": Route(fixture("atom.xml"), headers={"Content-Type": "application/atom+xml"}),
        "/articles/en-long.html": Route(
            fixture("en-long.html"), headers={"Content-Type": "text/html; charset=utf-8"}
        ),
        "/articles/no-text.html": Route(fixture("no-text.html"), headers=html),
        "/articles/huge.html": Route(
            b"<html><body>" + b"<p>word </p>" * 10_000 + b"</body></html>", headers=html
        ),
        "/articles/he-1255.html": Route(
            fixture("he-1255.html"), headers=html
        ),  # no charset anywhere
        "/articles/ar-1256.html": Route(fixture("ar-1256.html"), headers=html),
        "/redirect-to-ftp": Route(status=302, headers={"Location": "ftp://127.0.0.1/articles/x"}),
    }
    with serve(routes) as served:
        yield served


@pytest.fixture(scope="module")
def ingested(site: Served) -> tuple[list[Article], object, list[str], str]:
    outlets = [
        Outlet("daily", "The Daily Example", "en", site.url("/rss.xml"), allow_private=True),
        Outlet("gone", "Gone", "en", site.url("/no-such-feed.xml"), allow_private=True),
        Outlet(
            "homepage", "Home page, not a feed", "en", site.url("/home.html"), allow_private=True
        ),
        Outlet(
            "atom",
            "Atom, feed text only",
            "he",
            site.url("/atom.xml"),
            fetch_pages=False,
            allow_private=True,
        ),
    ]
    progress: list[str] = []
    handler_records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_records.append(record)

    keep = Keep(level=logging.WARNING)
    logging.getLogger("pipeline.ingest").addHandler(keep)
    try:
        articles, result = ingest_outlets(outlets, SETTINGS, progress=progress.append)
    finally:
        logging.getLogger("pipeline.ingest").removeHandler(keep)
    log = "\n".join(r.getMessage() for r in handler_records)
    return articles, result, progress, log


def by_path(articles: list[Article]) -> dict[str, Article]:
    return {a.url.split("/", 3)[3]: a for a in articles}


def test_counts(ingested: tuple) -> None:
    articles, result, progress, _ = ingested
    assert result.stage == "ingest"
    counts = result.counts
    assert counts["feeds_ok"] == 2 and counts["feeds_failed"] == 2
    assert counts["items"] == 11
    assert counts["pages_fetched"] == 4  # en-long, no-text, he, ar
    assert counts["page_fallbacks"] == 5
    assert counts["page_fallback_no_text"] == 1
    assert counts["page_fallback_http_status"] == 2
    assert counts["page_fallback_too_large"] == 1
    assert counts["page_fallback_scheme_not_allowed"] == 1
    assert counts["duplicates"] == 1  # the same article through a second tracking URL
    assert counts["articles"] == len(articles) == 9
    assert result.seconds > 0
    assert any(p.startswith("daily:") for p in progress)


def test_rejects_carry_reasons(ingested: tuple) -> None:
    _, result, _, log = ingested
    reasons = sorted((r.outlet_id, r.reason) for r in result.rejects)
    assert reasons == sorted(
        [
            ("daily", "item_no_link"),
            ("daily", "page_no_text"),
            ("daily", "page_http_status"),
            ("daily", "page_http_status"),
            ("daily", "page_too_large"),
            ("daily", "page_scheme_not_allowed"),
            ("daily", "item_no_text"),  # title only and its page is gone
            ("gone", "feed_http_status"),
            ("homepage", "feed_malformed"),
            ("atom", "item_no_link"),
        ]
    )
    assert all(r.stage == "ingest" and r.detail for r in result.rejects)
    # Every fallback and failure is logged with its reason.
    for needle in (
        "http_status",
        "too_large",
        "scheme_not_allowed",
        "no_text",
        "not a feed",
        "HTTP 404",
    ):
        assert needle in log


def test_page_articles(ingested: tuple) -> None:
    articles = by_path(ingested[0])
    en = articles["articles/en-long.html"]
    assert en.text_source == "page"
    assert en.article_id == article_id_for(en.url)
    assert en.text_sha256 == sha256_text(en.text)
    assert en.title == "Parliament approves the 2025 budget"
    assert en.text.count("\n\n") == 2 and "All rights reserved" not in en.text
    assert en.published_at == datetime(2025, 3, 4, 19, 30, tzinfo=UTC)  # from the feed
    assert en.lang == "" and en.lang_confidence == 0.0  # the detect stage fills these in
    for name in ("he-1255", "ar-1256"):
        page = articles[f"articles/{name}.html"]
        want = json.loads((FIXTURES / f"{name}.expected.json").read_text(encoding="utf-8"))
        assert page.text_source == "page"
        assert page.text == "\n\n".join(want["paragraphs"])
        assert page.title == want["title"]


def test_fallbacks_use_feed_text(ingested: tuple) -> None:
    articles = by_path(ingested[0])
    storm = articles["articles/no-text.html"]
    assert storm.text_source == "feed" and storm.text.startswith("A winter storm closed")
    assert storm.title == "Storm closes the northern coast road"
    assert articles["articles/missing.html"].text.startswith("The ministry published")
    assert articles["articles/huge.html"].text_source == "feed"
    assert articles["redirect-to-ftp"].text.startswith("Officials opened")
    assert "articles/missing-too.html" not in articles


def test_feed_only_outlet(ingested: tuple) -> None:
    atom = [a for a in ingested[0] if a.outlet_id == "atom"]
    assert [a.text for a in atom] == [
        "Negotiators met again in Cairo.\n\nBoth sides sent delegations.",
        "Stocks rose.\n\nBonds fell.",
    ]
    assert all(a.text_source == "feed" for a in atom)


def test_idempotent(site: Served, ingested: tuple) -> None:
    again, _ = ingest_outlets(
        [Outlet("daily", "The Daily Example", "en", site.url("/rss.xml"), allow_private=True)],
        SETTINGS,
    )
    first = [a for a in ingested[0] if a.outlet_id == "daily"]
    assert again == first


def _article(outlet: str, url: str, text: str) -> Article:
    return Article(article_id_for(url), outlet, url, "t", None, text, "feed", sha256_text(text))


def test_dedupe_rules() -> None:
    a = _article("x", "https://x.com/1", "wire text")
    a_again = _article("x", "https://x.com/1", "edited text")  # same URL
    a_other_url = _article("x", "https://x.com/print/1", "wire text")  # same outlet, same text
    b_wire = _article("y", "https://y.com/9", "wire text")  # another outlet ran the wire copy
    kept, dropped = dedupe_articles([a, a_again, a_other_url, b_wire])
    assert kept == [a, b_wire] and dropped == 2


FEED_A = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>A</title>
<item><title>With HTML</title><link>https://a.example/1?utm_source=x</link>
  <description>&lt;p&gt;First &lt;a href="https://a.example/x"&gt;para&lt;/a&gt;.&lt;/p&gt;&lt;p&gt;Second para.&lt;/p&gt;&lt;img src="x.png"&gt;</description>
  <pubDate>Mon, 03 Mar 2025 08:00:00 +0000</pubDate></item>
<item><title>Title only</title><link>https://a.example/2</link></item>
<item><title>With HTML</title><link>https://a.example/3</link>
  <description>&lt;p&gt;First para.&lt;/p&gt;&lt;p&gt;Second para.&lt;/p&gt;</description></item>
<item><title>Wire copy</title><link>https://a.example/4</link><description>Wire text shared by outlets.</description></item>
<item><link>https://a.example/5</link></item>
</channel></rss>
"""
FEED_B = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>B</title>
<entry><title>Repeated from A</title><link href="https://a.example/1#top"/><summary>dup</summary></entry>
<entry><title>Wire copy</title><link href="https://b.example/wire"/><summary>Wire text shared by outlets.</summary></entry>
</feed>
"""


def test_ingest_feed_files(tmp_path: Path) -> None:
    (tmp_path / "outlet-a.xml").write_text(FEED_A, encoding="utf-8")
    (tmp_path / "outlet-b.xml").write_text(FEED_B, encoding="utf-8")
    (tmp_path / "broken.xml").write_bytes(b"<html><body>not a feed</body></html>")
    missing = tmp_path / "missing.xml"
    articles, result = ingest_feed_files([tmp_path, missing], IngestSettings())
    by_url = {a.url: a for a in articles}
    assert list(by_url) == [
        "https://a.example/1",
        "https://a.example/2",
        "https://a.example/4",
        "https://b.example/wire",
    ]
    first = by_url["https://a.example/1"]
    assert first.outlet_id == "outlet-a" and first.text == "First para.\n\nSecond para."
    assert first.published_at == datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
    title_only = by_url["https://a.example/2"]
    assert (
        title_only.text == "Title only"
        and title_only.text_source == "feed"
        and title_only.published_at is None
    )
    assert by_url["https://b.example/wire"].outlet_id == "outlet-b"  # wire copy kept per outlet
    assert result.counts["feeds_ok"] == 2 and result.counts["feeds_failed"] == 2
    assert (
        result.counts["duplicates"] == 2
    )  # a.example/1 again (URL); a.example/3 (same title and feed text)
    assert result.counts["articles"] == 4
    reasons = sorted(r.reason for r in result.rejects)
    assert reasons == ["feed_malformed", "feed_unreadable", "item_no_text"]


def test_package_import_is_light() -> None:
    code = (
        "import sys, pipeline.ingest\n"
        "heavy = [m for m in ('httpx', 'feedparser', 'trafilatura', 'lxml', 'chardet', 'torch') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
