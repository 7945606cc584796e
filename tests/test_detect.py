"""Language detection: script first, langdetect where scripts are shared, hint for short text."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from pipeline.detect import LangGuess, detect_articles, detect_language, detect_paragraphs
from pipeline.records import Article, article_id_for, sha256_text

HEBREW = (
    'ראש הממשלה אמר היום כי צה"ל ימשיך לפעול ברצועת עזה עד להשבת כל החטופים. '
    "לדבריו, המגעים עם ארצות הברית ומצרים נמשכים, אך הפערים בין הצדדים עדיין גדולים."
)
ARABIC = (
    "قال مسؤولون في القاهرة إن المفاوضات بشأن وقف إطلاق النار في غزة ستستأنف الأسبوع المقبل، "
    "وأضافوا أن الوسطاء يعملون على تقريب وجهات النظر بين الطرفين."
)
ENGLISH = (
    "Negotiators will return to Cairo next week to resume talks on a ceasefire in Gaza, "
    "officials said on Tuesday, adding that gaps between the two sides remained wide."
)
FRENCH = (
    "Le gouvernement a annoncé mardi une nouvelle série de mesures pour soutenir les familles, "
    "provoquant la colère des syndicats qui réclament des hausses de salaires."
)
PERSIAN = (
    "جمهوری اسلامی ایران امروز اعلام کرد که مذاکرات هسته‌ای با کشورهای اروپایی "
    "در هفته آینده در ژنو ادامه خواهد یافت."
)
ARABIC_WITH_NAMES = (
    "قال رئيس الوزراء Benjamin Netanyahu خلال لقائه مع الرئيس الأمريكي Joe Biden "
    "والرئيس الفرنسي Emmanuel Macron إن المفاوضات ما زالت مستمرة"
)


def _article(text: str, title: str = "", outlet: str = "o1", n: int = 0) -> Article:
    url = f"https://example.org/{outlet}/{n}"
    return Article(
        article_id=article_id_for(url),
        outlet_id=outlet,
        url=url,
        title=title,
        published_at=datetime(2024, 5, 1, tzinfo=UTC),
        text=text,
        text_source="feed",
        text_sha256=sha256_text(text),
    )


@pytest.mark.parametrize(
    ("text", "lang", "method"),
    [(HEBREW, "he", "script"), (ARABIC, "ar", "script"), (ENGLISH, "en", "langdetect")],
)
def test_paragraphs_in_the_three_languages(text: str, lang: str, method: str) -> None:
    guess = detect_language(text)
    assert (guess.lang, guess.method) == (lang, method)
    assert guess.confidence > 0.9


def test_short_english_falls_back_to_the_hint() -> None:
    assert detect_language("Breaking news", hint="en").lang == "en"
    assert detect_language("Breaking news", hint="en").method == "hint"
    # langdetect alone says "tl"; without a hint the honest answer is "undetermined".
    assert detect_language("Breaking news").lang == "und"


def test_acronym_is_not_indonesian() -> None:
    assert detect_language("IDF").lang == "und"
    assert detect_language("IDF", hint="en-GB") == LangGuess("en", 0.5, "hint")


def test_arabic_with_latin_names_is_arabic() -> None:
    guess = detect_language(ARABIC_WITH_NAMES)
    assert guess.lang == "ar"
    assert guess.method == "script"


def test_hint_never_overrides_the_script() -> None:
    assert detect_language(HEBREW, hint="en").lang == "he"
    assert detect_language(ARABIC, hint="he").lang == "ar"


@pytest.mark.parametrize("text", ["", "   \n\n ", "2024-05-01 12:30", "1,234.5 !!! ??? 42%"])
def test_text_without_letters_is_undetermined(text: str) -> None:
    assert detect_language(text) == LangGuess("und", 0.0, "no_letters")


def test_french_and_persian() -> None:
    assert detect_language(FRENCH).lang == "fr"
    persian = detect_language(PERSIAN)
    assert (persian.lang, persian.method) == ("fa", "langdetect")


def test_deterministic_across_calls_and_threads() -> None:
    text = "Breaking news from Gaza and Cairo today"
    first = detect_language(ENGLISH + " " + text)
    assert all(detect_language(ENGLISH + " " + text) == first for _ in range(20))
    results: dict[int, list[LangGuess]] = {}

    def work(n: int) -> None:
        results[n] = [detect_language(t) for t in (ENGLISH, FRENCH, PERSIAN, text)]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = [detect_language(t) for t in (ENGLISH, FRENCH, PERSIAN, text)]
    assert [results[n] for n in range(4)] == [expected] * 4


def test_detect_paragraphs_follows_each_paragraph() -> None:
    guesses = detect_paragraphs(f"{ENGLISH}\n\n\n{ARABIC}\n\n  \n\n{HEBREW}")
    assert [g.lang for g in guesses] == ["en", "ar", "he"]


def test_detect_articles_fills_fields_and_counts() -> None:
    articles = [
        _article(HEBREW, title="חדשות", n=1),
        _article(FRENCH, title="Actualités", n=2),
        _article("", title="IDF", outlet="en_outlet", n=3),
        _article("12345", title="", n=4),
        # The headline alone reads as Arabic; the body is English, and the body wins.
        _article(ENGLISH, title="غزة", n=5),
    ]
    out, result = detect_articles(articles, outlet_langs={"en_outlet": "en"})
    assert [a.lang for a in out] == ["he", "fr", "en", "und", "en"]
    assert [a.lang_method for a in out] == [
        "script",
        "langdetect",
        "hint",
        "no_letters",
        "langdetect",
    ]
    assert out[0].lang_confidence > 0.9
    assert [a.article_id for a in out] == [a.article_id for a in articles]
    assert out[1].text == FRENCH  # kept, not dropped
    assert result.counts["articles"] == 5
    assert result.counts["untranslatable"] == 1
    assert result.counts["und"] == 1
    assert result.counts["lang_en"] == 2
    assert result.rejects == []
