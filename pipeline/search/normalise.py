"""Text normalisation for the full-text index: the same function for documents and queries.

English needs only lower-casing (the fts index stems it with Porter). Hebrew and Arabic also
need: niqqud / tashkeel removed, Arabic letter variants folded (alef forms, hamza seats,
ta marbuta, alef maqsura), tatweel dropped, and the one-letter proclitics that glue onto words
(Hebrew ו ה ב ל מ ש כ, Arabic و ف ب ك ل and the article ال) handled, so "רפיח" finds "ברפיח".

Prefix handling is bounded so that not every word matches everything:
- at most ONE proclitic chain is stripped, from a closed list (e.g. Hebrew "ו"+"ב", Arabic
  "و"+"ب"+"ال"), never letters inside a word;
- only when at least MIN_STEM letters remain (3: the shortest Hebrew/Arabic stems, "رفح");
- the surface form is always indexed too, so an exact match scores above a stem-only match.
A word is then indexed as its surface form plus at most one stripped form.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

MIN_STEM = 3

_HEBREW_MARKS = re.compile(r"[\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7]")
_ARABIC_MARKS = re.compile(r"[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_ARABIC_FOLD = str.maketrans(
    {
        "\u0623": "\u0627",  # أ -> ا
        "\u0625": "\u0627",  # إ -> ا
        "\u0622": "\u0627",  # آ -> ا
        "\u0671": "\u0627",  # ٱ -> ا
        "\u0629": "\u0647",  # ة -> ه
        "\u0649": "\u064a",  # ى -> ي
        "\u0624": "\u0648",  # ؤ -> و
        "\u0626": "\u064a",  # ئ -> ي
    }
)
# A token: letters and digits (after marks are removed), Hebrew geresh/gershayim split it.
_TOKEN = re.compile(r"[^\W_]+")
_HEBREW_LETTER = re.compile(r"[\u05d0-\u05ea]")
_ARABIC_LETTER = re.compile(r"[\u0621-\u064a]")


def _hebrew_chains() -> tuple[str, ...]:
    # conjunction ו, then a relative/temporal ש / כש / מש, then one of ב ל מ כ ה
    conj = ["", "ו"]
    rel = ["", "ש", "כש", "מש"]
    prep = ["", "ב", "ל", "מ", "כ", "ה"]
    chains = {c + r + p for c in conj for r in rel for p in prep}
    chains.discard("")
    return tuple(sorted(chains, key=lambda s: (-len(s), s)))


def _arabic_chains() -> tuple[str, ...]:
    # conjunction و / ف, then a preposition ب ك ل, then the article ال (ل + ال is written لل)
    conj = ["", "و", "ف"]
    prep = ["", "ب", "ك", "ل"]
    art = ["", "ال"]
    chains = {c + p + a for c in conj for p in prep for a in art}
    chains |= {c + "لل" for c in conj}
    chains.discard("")
    return tuple(sorted(chains, key=lambda s: (-len(s), s)))


HEBREW_CHAINS = _hebrew_chains()
ARABIC_CHAINS = _arabic_chains()


def fold(text: str) -> str:
    """Lower-case, remove niqqud/tashkeel/tatweel and fold Arabic letter variants."""
    text = unicodedata.normalize("NFC", text)
    text = _HEBREW_MARKS.sub("", text)
    text = _ARABIC_MARKS.sub("", text)
    return text.translate(_ARABIC_FOLD).lower()


@lru_cache(maxsize=200_000)
def strip_proclitics(token: str) -> str | None:
    """The token without its longest known proclitic chain, or None when none applies.

    A chain is stripped only if at least MIN_STEM letters remain; a shorter chain is tried
    when the longest would leave too little ("ובבית" -> "בית", "בית" -> None).
    """
    if _HEBREW_LETTER.match(token):
        chains = HEBREW_CHAINS
    elif _ARABIC_LETTER.match(token):
        chains = ARABIC_CHAINS
    else:
        return None
    for chain in chains:
        if token.startswith(chain) and len(token) - len(chain) >= MIN_STEM:
            return token[len(chain) :]
    return None


def tokens(text: str) -> list[str]:
    """Folded tokens of `text`, in order."""
    return _TOKEN.findall(fold(text))


def index_terms(text: str) -> list[str]:
    """Terms to index for `text`: every surface token, plus its stripped form where one applies."""
    out: list[str] = []
    for tok in tokens(text):
        out.append(tok)
        stem = strip_proclitics(tok)
        if stem is not None:
            out.append(stem)
    return out


def index_text(text: str) -> str:
    """`index_terms` joined by spaces: the column the fts index reads."""
    return " ".join(index_terms(text))


def query_terms(query: str) -> list[str]:
    """Terms of a query, surface and stripped, each once in order ("ברפיח" -> ברפיח, רפיח)."""
    seen: dict[str, None] = {}
    for term in index_terms(query):
        seen.setdefault(term, None)
    return list(seen)


def match_keys(query: str) -> list[str]:
    """One key per query word for all-words matching: its stripped form when it has one (which
    every prefixed or bare form of the word indexes), else the word itself."""
    seen: dict[str, None] = {}
    for tok in tokens(query):
        seen.setdefault(strip_proclitics(tok) or tok, None)
    return list(seen)
