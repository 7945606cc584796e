"""Feed parsing: RSS, Atom, broken and hostile feeds, HTML to plain text."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.ingest.feeds import has_entity_declarations, parse_feed
from pipeline.ingest.text import html_to_text
from pipeline.records import Outlet

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
OUTLET = Outlet(
    outlet_id="daily", name="Daily", lang="en", feed_url="https://daily.example.com/rss.xml"
)
BASE = "https://daily.example.com/rss.xml"


def reasons(rejects: list) -> list[str]:
    return [r.reason for r in rejects]


def test_rss_items() -> None:
    items, rejects = parse_feed((FIXTURES / "rss.xml").read_bytes(), OUTLET, base_url=BASE)
    assert len(items) == 9
    assert reasons(rejects) == ["item_no_link"]
    assert "An item without any link" in rejects[0].detail
    first = items[0]
    assert first.outlet_id == "daily"
    assert first.url == "https://daily.example.com/articles/en-long.html"
    assert first.raw_url.endswith("/articles/en-long.html?utm_source=rss&utm_medium=feed")
    assert first.title == "Parliament approves the 2025 budget"  # HTML in the title stripped
    assert first.summary == "The budget passed late on Tuesday.\n\nOpposition walked out."
    assert first.content == ""
    assert first.published_at == datetime(2025, 3, 4, 19, 30, tzinfo=UTC)
    assert first.feed_lang == "en"
    storm = items[1]
    assert storm.content.startswith("A winter storm closed")
    assert "\n\nDrivers were told" in storm.content
    assert "alert" not in storm.content  # feedparser's sanitiser and ours drop scripts
    assert storm.summary == "Short teaser."
    assert items[2].published_at is None
    assert items[4].summary == "תקציר קצר"
    # The same article through another tracking link has the same canonical URL.
    assert items[7].url == first.url


def test_atom_items() -> None:
    items, rejects = parse_feed((FIXTURES / "atom.xml").read_bytes(), OUTLET)
    assert reasons(rejects) == ["item_no_link"]  # the javascript: link is refused
    assert [i.url for i in items] == [
        "https://news.example.org/world/ceasefire-talks.html?id=7",  # xml:base resolved
        "https://news.example.org/markets/up",
    ]
    talks, markets = items
    assert talks.title == "Ceasefire talks resume"
    assert talks.content == "Negotiators met again in Cairo.\n\nBoth sides sent delegations."
    assert talks.summary == "Short summary."
    assert talks.published_at == datetime(2025, 3, 6, 7, 15, tzinfo=UTC)
    assert talks.feed_lang == "he"
    assert markets.title == "Markets <up> on Thursday"  # type="text": angle brackets are text
    assert markets.content == "Stocks rose.\n\nBonds fell."


def test_empty_bytes() -> None:
    items, rejects = parse_feed(b"", OUTLET)
    assert items == [] and reasons(rejects) == ["feed_empty"]
    items, rejects = parse_feed(b"  \n ", OUTLET)
    assert items == [] and reasons(rejects) == ["feed_empty"]


def test_valid_feed_without_entries_is_empty_not_malformed() -> None:
    data = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title></channel></rss>'
    items, rejects = parse_feed(data, OUTLET)
    assert items == [] and reasons(rejects) == ["feed_empty"]


def test_html_page_served_as_feed() -> None:
    items, rejects = parse_feed(
        (FIXTURES / "not-a-feed.html").read_bytes(), OUTLET, content_type="text/html"
    )
    assert items == [] and reasons(rejects) == ["feed_malformed"]
    assert "HTML page" in rejects[0].detail


@pytest.mark.parametrize("data", [b"\x00\x01\x02garbage\xff", b"just some text", b'{"json": true}'])
def test_garbage(data: bytes) -> None:
    items, rejects = parse_feed(data, OUTLET)
    assert items == [] and reasons(rejects) == ["feed_malformed"]
    assert rejects[0].detail


def test_truncated_xml_keeps_recovered_items(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pipeline.ingest.feeds"):
        items, rejects = parse_feed((FIXTURES / "truncated.xml").read_bytes(), OUTLET)
    assert [i.url for i in items] == ["http://x/1"]
    assert reasons(rejects) == ["feed_bozo"]
    assert "SAXParseException" in rejects[0].detail
    assert "malformed feed recovered" in caplog.text


QUADRATIC = (
    b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "'
    + b"A" * 20_000
    + b'">\n]>\n<rss version="2.0"><channel><title>'
    + b"&a;" * 20_000
    + b"</title></channel></rss>"
)
XXE = (
    b'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    b'<rss version="2.0"><channel><title>t</title><item><title>&xxe;</title>'
    b"<link>http://x/1</link><description>&xxe;</description></item></channel></rss>"
)


@pytest.mark.parametrize("data", [QUADRATIC, XXE, XXE.decode().encode("utf-16")])
def test_entity_declarations_rejected_unparsed(data: bytes) -> None:
    items, rejects = parse_feed(data, OUTLET)
    assert items == [] and reasons(rejects) == ["feed_entities"]


def test_entity_scan_sees_through_comments() -> None:
    hidden = b'<!-- <a> --><!DOCTYPE x [<!ENTITY e "v">]><rss/>'
    assert has_entity_declarations(hidden)
    assert not has_entity_declarations((FIXTURES / "rss.xml").read_bytes())


def test_byte_cap() -> None:
    data = (FIXTURES / "rss.xml").read_bytes()
    items, rejects = parse_feed(data, OUTLET, max_bytes=100)
    assert items == [] and reasons(rejects) == ["feed_too_large"]


def test_max_items() -> None:
    items, rejects = parse_feed(
        (FIXTURES / "rss.xml").read_bytes(), OUTLET, base_url=BASE, max_items=3
    )
    assert len(items) == 3
    assert reasons(rejects) == ["feed_truncated"]


def test_relative_links_without_base_are_rejected() -> None:
    items, rejects = parse_feed((FIXTURES / "rss.xml").read_bytes(), OUTLET)
    assert items == []
    assert set(reasons(rejects)) == {"item_no_link"}


def test_undeclared_windows_1255_feed_decodes() -> None:
    text = "הממשלה תתכנס מחר בבוקר לדיון מיוחד על המצב הביטחוני בדרום הארץ"
    data = (
        f'<rss version="2.0"><channel><title>חדשות</title><item><title>{text}</title>'
        f"<link>http://x/1</link><description>{text}. {text}.</description></item></channel></rss>"
    ).encode("windows-1255")
    items, _ = parse_feed(data, OUTLET)
    assert items[0].title == text


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<p>One <b>bold</b>\n word.</p><p>Two &amp; three</p>", "One bold word.\n\nTwo & three"),
        ("line one<br>line two<br/><br/>para two", "line one line two\n\npara two"),
        ("<div><script>var x=1;</script><style>p{}</style>text<!-- c --> tail</div>", "text tail"),
        ("<ul><li>a</li><li>b</li></ul>", "a\n\nb"),
        ("plain\n\n\n  text  ", "plain\n\ntext"),
        ("a < b and b > c", "a < b and b > c"),
        ("", ""),
    ],
)
def test_html_to_text(fragment: str, expected: str) -> None:
    assert html_to_text(fragment) == expected
