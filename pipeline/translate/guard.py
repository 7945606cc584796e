"""Trust guard: flag translations a reader should not trust without looking.

Neural MT fails in recognisable ways: it loops ("the army the army the army ..."), returns nothing
for a real sentence, or hallucinates far more (or far less) text than the source holds. The guard
is a pure function of (source, output), so a cached translation gets the same flag on a re-run
without the model. The translate stage retries a flagged sentence with beam search once and keeps
the flag only when the retry is degenerate too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FLAGS", "GuardLimits", "check_translation", "repetition_loop"]

FLAGS: tuple[str, ...] = ("empty", "repetition", "length_ratio")


@dataclass(frozen=True)
class GuardLimits:
    # An n-gram (n = 1..max_ngram) repeated back to back this many times is a loop ...
    min_repeats: int = 4
    max_ngram: int = 4
    # ... unless the source repeats itself as much (a chant, a list of the same word).
    # English characters per source character: he/ar -> en is typically 0.9-1.6.
    min_ratio: float = 0.25
    max_ratio: float = 4.0
    min_source_chars: int = 20  # below this, ratios of short headlines and names mean nothing


DEFAULT_LIMITS = GuardLimits()


def repetition_loop(words: list[str], min_repeats: int, max_ngram: int) -> str:
    """The first n-gram repeated ``min_repeats`` times back to back, or "" when there is none."""
    for n in range(1, max_ngram + 1):
        needed = n * min_repeats
        for start in range(0, len(words) - needed + 1):
            gram = words[start : start + n]
            if all(
                words[start + k * n : start + (k + 1) * n] == gram for k in range(1, min_repeats)
            ):
                return " ".join(gram)
    return ""


# Glued loops a word split cannot see ("hehehehehehe", "ששששששששש"): a 2-8 character unit
# repeated six times or more, or one character ten times or more.
_CHAR_LOOP = re.compile(r"(.{2,8}?)\1{5,}|(.)\2{9,}", re.DOTALL)


def _char_loop(text: str) -> str:
    match = _CHAR_LOOP.search(text)
    return match.group() if match else ""


def _words(text: str) -> list[str]:
    return text.casefold().split()


def check_translation(source: str, output: str, limits: GuardLimits = DEFAULT_LIMITS) -> str:
    """The guard flag for one translation ("empty", "repetition", "length_ratio"), "" when clean."""
    src = source.strip()
    out = output.strip()
    if not src:
        return ""
    if not out:
        return "empty"
    loop = repetition_loop(_words(out), limits.min_repeats, limits.max_ngram)
    if loop and not repetition_loop(_words(src), limits.min_repeats, limits.max_ngram):
        return "repetition"
    if _char_loop(out.casefold()) and not _char_loop(src.casefold()):
        return "repetition"
    if len(src) >= limits.min_source_chars:
        ratio = len(out) / len(src)
        if not limits.min_ratio <= ratio <= limits.max_ratio:
            return "length_ratio"
    return ""
