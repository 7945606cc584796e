"""Sentence segmentation: Hebrew, Arabic and English punctuation, paragraphs, long sentences."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.records import Article, article_id_for, sha256_text
from pipeline.segment import segment_articles, split_long, split_sentences


def _article(text: str, lang: str, n: int = 0) -> Article:
    url = f"https://example.org/a/{n}"
    return Article(
        article_id=article_id_for(url),
        outlet_id="o1",
        url=url,
        title="t",
        published_at=datetime(2024, 5, 1, tzinfo=UTC),
        text=text,
        text_source="page",
        text_sha256=sha256_text(text),
        lang=lang,
    )


def test_hebrew_abbreviations_and_question() -> None:
    text = (
        'דובר צה"ל אמר כי הכוחות ימשיכו לפעול. לדבריו, ארה"ב תומכת במהלך. '
        "האם תושג הפסקת אש? "
        'גורמים בלשכת רה"מ אמרו ע"י דובר: "זה לא יקרה." '
        "ח'ליל אמר כי 5.2 מיליון איש נפגעו."
    )
    assert split_sentences(text, "he") == [
        'דובר צה"ל אמר כי הכוחות ימשיכו לפעול.',
        'לדבריו, ארה"ב תומכת במהלך.',
        "האם תושג הפסקת אש?",
        'גורמים בלשכת רה"מ אמרו ע"י דובר: "זה לא יקרה."',
        "ח'ליל אמר כי 5.2 מיליון איש נפגעו.",
    ]


def test_hebrew_typographic_gershayim_and_geresh() -> None:
    text = "דובר צה\u05f4ל אמר כי ח\u05f3ליל נפצע. ארה\u05f4ב הגיבה."
    assert split_sentences(text, "he") == [
        "דובר צה\u05f4ל אמר כי ח\u05f3ליל נפצע.",
        "ארה\u05f4ב הגיבה.",
    ]


def test_arabic_punctuation() -> None:
    text = (
        "قال الوزير إن المفاوضات مستمرة؛ لكنه لم يحدد موعدا، وأضاف أن الوضع صعب. "
        "هل ستنجح المحادثات؟ "
        "قال د. محمد إن الأمر انتهى۔ "
        "لا أحد يعرف"
    )
    assert split_sentences(text, "ar") == [
        "قال الوزير إن المفاوضات مستمرة؛ لكنه لم يحدد موعدا، وأضاف أن الوضع صعب.",
        "هل ستنجح المحادثات؟",
        "قال د. محمد إن الأمر انتهى۔",
        "لا أحد يعرف",
    ]


def test_english_abbreviations_numbers_and_quotes() -> None:
    text = (
        "The U.S. said Dr. Smith was hurt. "
        "A 4.8 magnitude quake struck at 3 p.m. on Jan. 5 near St. Catherine. "
        'Aid worth "$5.2 billion" was pledged by the U.N. The money arrives in May. '
        '"We are ready," Gen. Halevi said. "It will take time." '
        '"Why now?" she asked. J. K. Rowling lives at No. 10, e.g. nearby. '
        "He paused... Then he left."
    )
    assert split_sentences(text, "en") == [
        "The U.S. said Dr. Smith was hurt.",
        "A 4.8 magnitude quake struck at 3 p.m. on Jan. 5 near St. Catherine.",
        'Aid worth "$5.2 billion" was pledged by the U.N.',
        "The money arrives in May.",
        '"We are ready," Gen. Halevi said.',
        '"It will take time."',
        '"Why now?" she asked.',
        "J. K. Rowling lives at No. 10, e.g. nearby.",
        "He paused...",
        "Then he left.",
    ]


def test_numbered_lists() -> None:
    text = "The demands:\n1. A ceasefire.\n2. The release of hostages.\n\nThe toll rose to 25. Police said."
    assert split_sentences(text, "en") == [
        "The demands:",
        "1. A ceasefire.",
        "2. The release of hostages.",
        "The toll rose to 25.",
        "Police said.",
    ]
    inline = "Three demands: 1. A ceasefire. 2. Aid."
    assert split_sentences(inline, "en") == ["Three demands: 1. A ceasefire.", "2. Aid."]


def test_wrapped_lines_join_into_one_sentence() -> None:
    assert split_sentences("Officials said the talks\nwould resume on Sunday.", "en") == [
        "Officials said the talks would resume on Sunday."
    ]


LONG = (
    "The minister said that the talks would continue, that the delegation would travel to "
    "Cairo on Sunday and that a deal could be reached within days; officials in Jerusalem were "
    "more cautious, saying that gaps remained on the prisoners and the withdrawal"
)


def test_split_long_prefers_the_strongest_clause_boundary() -> None:
    pieces = split_long(LONG, 150)
    assert pieces[0].endswith(";")
    assert all(len(p) <= 150 for p in pieces)
    assert " ".join(pieces) == LONG
    assert split_long(LONG, 1000) == [LONG]


def test_split_long_arabic_and_last_resorts() -> None:
    arabic = "قال الوزير إن المفاوضات مستمرة وإن الوفد سيصل غدا؛ لكنه لم يحدد موعدا للاتفاق"
    assert split_long(arabic, 60) == [
        "قال الوزير إن المفاوضات مستمرة وإن الوفد سيصل غدا؛",
        "لكنه لم يحدد موعدا للاتفاق",
    ]
    words = " ".join(f"word{i}" for i in range(40))
    pieces = split_long(words, 50)
    assert all(len(p) <= 50 for p in pieces)
    assert " ".join(pieces) == words  # cut between words only
    url = "https://example.org/" + "x" * 80
    assert split_long(f"see {url} now", 30) == ["see", url, "now"]
    with pytest.raises(ValueError):
        split_long("text", 0)


def test_segment_articles_numbers_paragraphs_and_segments() -> None:
    text = f"First paragraph. Second sentence.\n\n   \n\n{LONG}.\n\nLast paragraph?"
    articles = [
        _article(text, "en", 1),
        _article("  \n\n ", "en", 2),
        _article("שלום. מה נשמע?", "he", 3),
    ]
    segments, result = segment_articles(articles, max_chars=150)
    first = [s for s in segments if s.article_id == articles[0].article_id]
    assert [s.seg_no for s in first] == list(range(len(first)))
    assert [s.para_no for s in first][:2] == [0, 0]
    assert {s.para_no for s in first} == {0, 1, 2}
    assert first[-1].text == "Last paragraph?" and first[-1].para_no == 2
    assert all(len(s.text) <= 150 and s.lang == "en" for s in segments if s.lang == "en")
    hebrew = [s for s in segments if s.article_id == articles[2].article_id]
    assert [(s.seg_no, s.text, s.lang) for s in hebrew] == [
        (0, "שלום.", "he"),
        (1, "מה נשמע?", "he"),
    ]
    assert result.counts["segments"] == len(segments)
    assert result.counts["long_sentences_split"] == 1
    assert [r.reason for r in result.rejects] == ["empty_text"]
    again, _ = segment_articles(articles, max_chars=150)
    assert again == segments
