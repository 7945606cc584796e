"""Article extraction from pages, and decoding page bytes (legacy Hebrew/Arabic charsets)."""

from __future__ import annotations

import codecs
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.ingest.encoding import decode_html
from pipeline.ingest.pages import ExtractError, extract_article

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"


def expected(name: str) -> dict[str, object]:
    return json.loads((FIXTURES / f"{name}.expected.json").read_text(encoding="utf-8"))


def test_extract_english_article() -> None:
    page = extract_article((FIXTURES / "en-long.html").read_text(encoding="utf-8"), "https://x/a")
    assert page.title == "Parliament approves the 2025 budget"
    paragraphs = page.text.split("\n\n")
    assert len(paragraphs) == 3
    assert paragraphs[0].startswith("Parliament approved the 2025 state budget")
    for boilerplate in ("Most read", "All rights reserved", "Home", "Sport"):
        assert boilerplate not in page.text
    assert page.published_at == datetime(2025, 3, 4, 19, 30, tzinfo=UTC)


def test_no_text_raises_with_reason() -> None:
    with pytest.raises(ExtractError) as info:
        extract_article((FIXTURES / "no-text.html").read_text(encoding="utf-8"), "https://x/b")
    assert info.value.reason == "no_text"


@pytest.mark.parametrize("html", ["", "   ", "<html></html>", "\x00\x01"])
def test_degenerate_html(html: str) -> None:
    with pytest.raises(ExtractError):
        extract_article(html, "https://x/c")


@pytest.mark.parametrize(
    ("name", "codec"), [("he-1255", "windows-1255"), ("ar-1256", "windows-1256")]
)
@pytest.mark.parametrize("content_type", [None, "text/html"])
def test_undeclared_legacy_charset_pages(name: str, codec: str, content_type: str | None) -> None:
    raw = (FIXTURES / f"{name}.html").read_bytes()
    assert b"charset" not in raw.lower()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    html = decode_html(raw, content_type)
    assert html == raw.decode(codec)
    page = extract_article(html, f"https://x/{name}")
    want = expected(name)
    assert page.title == want["title"]
    assert page.text == "\n\n".join(want["paragraphs"])  # type: ignore[arg-type]


HEBREW = "שלום עולם, זהו מבחן של קידוד תווים בעברית."


def test_bom_wins() -> None:
    raw = codecs.BOM_UTF8 + f"<p>{HEBREW}</p>".encode()
    assert decode_html(raw, "text/html; charset=windows-1252") == f"<p>{HEBREW}</p>"
    raw16 = codecs.BOM_UTF16_LE + f"<p>{HEBREW}</p>".encode("utf-16-le")
    assert decode_html(raw16, None) == f"<p>{HEBREW}</p>"


def test_http_charset_then_meta() -> None:
    raw = f"<html><head><meta charset='utf-8'></head><p>{HEBREW}</p></html>".encode("windows-1255")
    # HTTP header wins over a wrong <meta>.
    assert HEBREW in decode_html(raw, "text/html; charset=windows-1255")
    # A <meta> charset is used when HTTP says nothing.
    meta = f'<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1255"></head><p>{HEBREW}</p>'
    assert HEBREW in decode_html(meta.encode("windows-1255"), "text/html")
    # An unknown HTTP charset label is ignored, not fatal.
    assert HEBREW in decode_html(f"<p>{HEBREW}</p>".encode(), "text/html; charset=x-no-such")


def test_iso_8859_8_i_label() -> None:
    raw = f"<p>{HEBREW}</p>".encode("iso-8859-8")
    assert HEBREW in decode_html(raw, "text/html; charset=ISO-8859-8-I")


def test_undecodable_bytes_replace_never_raise() -> None:
    text = decode_html(
        b"<p>\xff\xfe\xfd abc \x81\x8d\x8f\x90\x9d</p>" * 3, "text/html; charset=utf-8"
    )
    assert "abc" in text
