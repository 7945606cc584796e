"""Language of an article: the script of its letters first, langdetect where the script is shared.

langdetect alone misreads exactly the text this project sees most: short English headlines
("Breaking news" -> tl, "IDF" -> id), Arabic sentences full of Latin-script names (-> so) and text
with no letters (it raises). Hebrew and Arabic have scripts of their own, so counting letters by
script decides them outright; langdetect only chooses among languages that share a script (Latin
languages, Persian/Urdu against Arabic), and a short Latin text falls back to the outlet's language.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from pipeline.records import SUPPORTED_LANGS, Article, StageResult

logger = logging.getLogger(__name__)

UNDETERMINED = "und"
# Latin/other-script text with fewer letters than this is too short for langdetect alone.
SHORT_LETTERS = 40
# Below this probability langdetect's answer on a long text yields to the hint.
RELIABLE_PROB = 0.8
# A Persian/Urdu answer on Arabic-script text must be at least this sure.
ARABIC_SCRIPT_LANG_PROB = 0.9
# Hebrew/Arabic letters at this share outweigh a Latin share too short to read as a language.
MIN_RTL_SHARE = 0.25
# An outlet's declared language is a prior, not a measurement.
HINT_CONFIDENCE = 0.5

_HEBREW_RANGES = ((0x0590, 0x05FF), (0xFB1D, 0xFB4F))
_ARABIC_RANGES = (
    (0x0600, 0x06FF),
    (0x0750, 0x077F),
    (0x08A0, 0x08FF),
    (0xFB50, 0xFDFF),
    (0xFE70, 0xFEFF),
)
_LATIN_RANGES = ((0x0041, 0x005A), (0x0061, 0x007A), (0x00C0, 0x024F), (0x1E00, 0x1EFF))
# Letters Arabic does not use: their presence is what makes a Persian or Urdu reading plausible.
_PERSIAN_LETTERS = frozenset("پچژگکی")
_URDU_LETTERS = frozenset("ٹڈڑںےہۓ")
# Deprecated ISO 639 codes that feeds still declare.
_LEGACY_CODES = {"iw": "he", "ji": "yi", "in": "id"}

_LANGDETECT_LOCK = threading.Lock()


@dataclass(frozen=True)
class LangGuess:
    lang: str  # ISO 639-1 code as langdetect spells it, or "und"
    confidence: float  # 0..1
    method: str  # "script", "langdetect", "hint", "short", "no_letters"


def _in_ranges(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def _script_of(ch: str) -> str:
    cp = ord(ch)
    if _in_ranges(cp, _LATIN_RANGES):
        return "latin"
    if _in_ranges(cp, _HEBREW_RANGES):
        return "hebrew"
    if _in_ranges(cp, _ARABIC_RANGES):
        return "arabic"
    return "other"


def script_letters(text: str) -> dict[str, str]:
    """The letters of `text` grouped by script ("latin", "hebrew", "arabic", "other").

    Words keep their spaces so langdetect can still be run on one script's share of the text.
    Marks (niqqud, harakat), digits and punctuation are not letters and are left out.
    """
    parts: dict[str, list[str]] = {"latin": [], "hebrew": [], "arabic": [], "other": []}
    for ch in text:
        if ch.isalpha():
            parts[_script_of(ch)].append(ch)
        else:
            for chars in parts.values():
                if chars and chars[-1] != " ":
                    chars.append(" ")
    return {name: "".join(chars).strip() for name, chars in parts.items()}


def _letter_count(s: str) -> int:
    return sum(1 for ch in s if ch != " ")


def normalise_lang(code: str) -> str:
    """'he-IL' -> 'he', 'iw' -> 'he', 'EN' -> 'en'; '' stays ''."""
    primary = code.strip().lower().replace("_", "-").split("-")[0]
    return _LEGACY_CODES.get(primary, primary)


def _langdetect(text: str) -> list[tuple[str, float]]:
    """langdetect's candidates, best first; [] when it finds nothing to go on.

    langdetect draws random numbers; the seed is read from a class attribute when a detector is
    created, so setting it and detecting happen under one lock to stay deterministic in threads.
    """
    from langdetect import DetectorFactory, detect_langs
    from langdetect.lang_detect_exception import LangDetectException

    with _LANGDETECT_LOCK:
        DetectorFactory.seed = 0
        try:
            found = detect_langs(text)
        except LangDetectException:
            return []
    return [(str(c.lang), float(c.prob)) for c in found]


def _from_hint(hint: str, candidates: list[tuple[str, float]]) -> LangGuess:
    prob = dict(candidates).get(hint, 0.0)
    return LangGuess(hint, max(HINT_CONFIDENCE, prob), "hint")


def _detect_arabic_script(arabic: str, share: float) -> LangGuess:
    """Arabic unless the text carries Persian/Urdu letters and langdetect is sure of fa/ur."""
    letters = set(arabic)
    if letters & (_PERSIAN_LETTERS | _URDU_LETTERS):
        candidates = _langdetect(arabic)
        if candidates:
            lang, prob = candidates[0]
            if prob >= ARABIC_SCRIPT_LANG_PROB and (
                (lang == "fa" and letters & _PERSIAN_LETTERS)
                or (lang == "ur" and letters & _URDU_LETTERS)
            ):
                return LangGuess(lang, prob, "langdetect")
    return LangGuess("ar", share, "script")


def _detect_shared_script(text: str, hint: str) -> LangGuess:
    """Latin (or another shared script): langdetect, guarded against short text."""
    candidates = _langdetect(text)
    short = _letter_count(text) < SHORT_LETTERS
    if short or not candidates or candidates[0][1] < RELIABLE_PROB:
        if hint:
            return _from_hint(hint, candidates)
        if short or not candidates:
            return LangGuess(UNDETERMINED, 0.0, "short" if short else "langdetect")
    lang, prob = candidates[0]
    return LangGuess(lang, prob, "langdetect")


def detect_language(text: str, *, hint: str = "") -> LangGuess:
    """Language of `text`; `hint` is the outlet's or feed's declared language, used only as a
    fallback for text too short to tell. Never raises on odd input: no letters gives "und"."""
    hint = normalise_lang(hint)
    parts = script_letters(text)
    counts = {name: _letter_count(s) for name, s in parts.items()}
    total = sum(counts.values())
    if total == 0:
        return LangGuess(UNDETERMINED, 0.0, "no_letters")
    # Majority script; ties resolve in this fixed order so the answer never depends on dict order.
    order = ("hebrew", "arabic", "latin", "other")
    script = max(order, key=lambda name: (counts[name], -order.index(name)))
    share = counts[script] / total
    if script == "hebrew":
        return LangGuess("he", share, "script")
    if script == "arabic":
        return _detect_arabic_script(parts["arabic"], share)
    guess = _detect_shared_script(parts[script], hint)
    # Hebrew or Arabic prose around long Latin-script names: the Latin share is only names, which
    # langdetect cannot place, so the right-to-left script decides.
    rtl = max(("hebrew", "arabic"), key=lambda name: counts[name])
    if guess.method in ("short", "hint") and counts[rtl] / total >= MIN_RTL_SHARE:
        if rtl == "hebrew":
            return LangGuess("he", counts[rtl] / total, "script")
        return _detect_arabic_script(parts["arabic"], counts[rtl] / total)
    return guess


def detect_paragraphs(text: str, *, hint: str = "") -> list[LangGuess]:
    """One guess per non-empty paragraph, numbered as the segment stage numbers `para_no`.

    For articles that mix scripts (an English report quoting an Arabic statement).
    """
    from pipeline.segment.sentences import split_paragraphs

    return [detect_language(p, hint=hint) for p in split_paragraphs(text)]


def detect_articles(
    articles: list[Article], *, outlet_langs: Mapping[str, str] | None = None
) -> tuple[list[Article], StageResult]:
    """Fill `lang`, `lang_confidence` and `lang_method` of every article.

    Detection reads title and text together (a headline alone is too short to trust).
    `outlet_langs` maps outlet id to the outlet's language, the fallback for short text.
    Articles in languages we do not translate are kept, marked and counted ("untranslatable").
    """
    t0 = time.perf_counter()
    result = StageResult("detect")
    hints = outlet_langs or {}
    out: list[Article] = []
    for article in articles:
        body = "\n\n".join(part for part in (article.title, article.text) if part.strip())
        guess = detect_language(body, hint=hints.get(article.outlet_id, ""))
        out.append(
            replace(
                article,
                lang=guess.lang,
                lang_confidence=round(guess.confidence, 6),
                lang_method=guess.method,
            )
        )
        result.add("articles")
        result.add(f"lang_{guess.lang}")
        if guess.lang == UNDETERMINED:
            result.add("und")
            logger.info("language undetermined for %s (%s)", article.url, guess.method)
        elif guess.lang not in SUPPORTED_LANGS:
            result.add("untranslatable")
            logger.info("article %s is in %s, which is not translated", article.url, guess.lang)
    result.seconds = time.perf_counter() - t0
    return out, result
