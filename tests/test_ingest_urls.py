"""Canonical URLs (the article id depends on them) and the outlet file loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.ingest.outlets import load_outlets
from pipeline.ingest.urls import canonicalize_url
from pipeline.records import article_id_for


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://News.Example.COM/Path/A", "http://news.example.com/Path/A"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("https://example.com/a#comments", "https://example.com/a"),
        ("https://example.com/a?", "https://example.com/a"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2"),
        (
            "https://example.com/a?utm_source=rss&utm_medium=feed&id=7&fbclid=x&gclid=y",
            "https://example.com/a?id=7",
        ),
        (
            "https://example.com/a?UTM_Source=x&mc_cid=1&mc_eid=2&ref=tw&ref_src=t",
            "https://example.com/a",
        ),
        (
            "https://example.com/a?cmpid=1&at_medium=2&at_campaign=3&p=1",
            "https://example.com/a?p=1",
        ),
        # www is kept: www.example.com and example.com may be different sites.
        ("https://WWW.example.com/a", "https://www.example.com/a"),
        # Raw Hebrew and its percent-encoding are one URL; escapes are uppercased.
        ("https://example.co.il/חדשות/1", "https://example.co.il/%D7%97%D7%93%D7%A9%D7%95%D7%AA/1"),
        (
            "https://example.co.il/%d7%97%d7%93%d7%a9%d7%95%d7%aa/1",
            "https://example.co.il/%D7%97%D7%93%D7%A9%D7%95%D7%AA/1",
        ),
        ("https://user:secret@example.com/a", "https://example.com/a"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("https://example.com/a/", "https://example.com/a/"),
        ("https://example.com/100%", "https://example.com/100%25"),
    ],
)
def test_canonicalize(url: str, expected: str) -> None:
    assert canonicalize_url(url) == expected


def test_relative_links_resolve_against_base() -> None:
    base = "https://news.example.org/world/index.html"
    assert (
        canonicalize_url("story.html?utm_source=x", base)
        == "https://news.example.org/world/story.html"
    )
    assert canonicalize_url("/politics/1", base) == "https://news.example.org/politics/1"
    assert canonicalize_url("//cdn.example.org/x", base) == "https://cdn.example.org/x"
    assert canonicalize_url("../a/./b", base) == "https://news.example.org/a/b"


def test_tracking_variants_share_one_article_id() -> None:
    a = canonicalize_url("https://example.com/story?id=1&utm_source=rss#top")
    b = canonicalize_url("https://EXAMPLE.com:443/story?fbclid=abc&id=1")
    assert a == b
    assert article_id_for(a) == article_id_for(b)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://example.com/a",
        "file:///etc/passwd",
        "mailto:a@b.c",
        "",
        "/relative",
        "http://",
    ],
)
def test_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        canonicalize_url(url)


def test_bad_port_is_refused() -> None:
    with pytest.raises(ValueError, match="port"):
        canonicalize_url("http://example.com:99999/")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "outlets.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_outlets(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[[outlet]]
id = "haboker"
name = "HaBoker (הבוקר)"
lang = "he"
feed_url = "https://example.co.il/rss.xml"
homepage = "https://example.co.il/"
country = "IL"

[[outlet]]
id = "wire"
name = "Wire"
lang = "EN"
feed_url = "http://127.0.0.1:8765/wire.xml"
fetch_pages = false
""",
    )
    outlets = load_outlets(path)
    assert [o.outlet_id for o in outlets] == ["haboker", "wire"]
    assert outlets[0].name == "HaBoker (הבוקר)" and outlets[0].country == "IL"
    assert outlets[0].fetch_pages is True
    assert outlets[1].fetch_pages is False and outlets[1].lang == "en" and outlets[1].homepage == ""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[outlet]]\nid = "a"\nname = "A"\nlang = "en"\n',
            r"outlet #1 \('a'\): missing key\(s\) feed_url",
        ),
        ('[[outlet]]\nid = "a"\nname = "A"\nlang = "en"\nfeed_url = "ftp://x/feed"\n', "'a'.*http"),
        ('[[outlet]]\nid = "a"\nname = "A"\nlang = "en"\nfeed_url = "feed.xml"\n', "'a'.*http"),
        (
            '[[outlet]]\nid = "a"\nname = "A"\nlang = "en"\nfeed_url = "http://x/1"\n'
            '[[outlet]]\nid = "a"\nname = "B"\nlang = "en"\nfeed_url = "http://x/2"\n',
            "outlet #2: duplicate id 'a'",
        ),
        (
            '[[outlet]]\nid = "a"\nname = "A"\nlang = "en"\nfeed_url = "http://x/1"\nfetch_pages = "no"\n',
            "fetch_pages",
        ),
        ("[[outlet]\n", "not valid TOML"),
    ],
)
def test_load_outlets_errors_name_file_and_outlet(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ValueError, match=message) as info:
        load_outlets(path)
    assert str(path) in str(info.value)
