"""Lexical vectors of English text for event alignment: hashed, sublinear, entity-boosted.

Why hashing and no fitted vocabulary: a vocabulary (or an idf) fitted on one batch would make an
article's vector depend on which other articles came in the same batch, and an incremental run
would disagree with a rebuild. Hashed term frequencies depend on the article alone; the idf that
weighs them is kept by the caller from the articles processed so far, in processing order
(`DocumentFrequencies`), which is the same in a rebuild and in batches that arrive in time order.

Names, places and numbers tell same-topic events apart ("Khan Younis market, 14 killed" vs
"Bani Suheila school, 9 killed"), so capitalised words inside a sentence, runs of them
("Khan Younis") and numbers weigh more than ordinary words.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

N_FEATURES = 2**18
ENTITY_BOOST = 2.0  # a capitalised word not at the start of a sentence
NUMBER_BOOST = 2.0
LEXICAL_CHARS = 3000  # the top of an article carries the event; the tail adds background

_TOKEN = re.compile(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]|[A-Za-z]|\d+(?:[.,]\d+)*")
_SENTENCE_END = re.compile(r"[.!?:;\"“”]\s*$")


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | {"said", "says", "according", "reported", "told"}


def term_weights(text: str, stop_words: frozenset[str]) -> dict[str, float]:
    """Sublinear term frequencies (1 + log tf) with names and numbers boosted."""
    counts: dict[str, float] = {}
    previous_entity: str | None = None
    for match in _TOKEN.finditer(text[:LEXICAL_CHARS]):
        token = match.group()
        lower = token.lower().replace("’", "'")
        if token[0].isdigit():
            weight = NUMBER_BOOST
            previous_entity = None
        else:
            before = text[max(0, match.start() - 3) : match.start()]
            at_start = match.start() == 0 or bool(_SENTENCE_END.search(before)) or "\n" in before
            entity = token[0].isupper() and not at_start and lower not in stop_words
            if lower in stop_words or len(lower) < 2:
                previous_entity = None
                continue
            weight = ENTITY_BOOST if entity else 1.0
            if entity and previous_entity is not None:
                bigram = f"{previous_entity}_{lower}"
                counts[bigram] = counts.get(bigram, 0.0) + ENTITY_BOOST
            previous_entity = lower if token[0].isupper() else None
        counts[lower] = counts.get(lower, 0.0) + weight
    return {t: 1.0 + math.log(c) if c >= 1.0 else c for t, c in counts.items()}


# Share of English function words among the words of running English text: ~0.35-0.47 in news.
# Degenerate machine translation (repeated fragments, untranslated script, a test model's
# random output) sits below 0.1 and would make unrelated articles look alike; it is not used.
MIN_STOPWORD_SHARE = 0.2
_WORD = re.compile(r"\w+")


def looks_english(text: str, stop_words: frozenset[str] | None = None) -> bool:
    """True when the text reads as English prose (enough English function words)."""
    words = _WORD.findall(text[:LEXICAL_CHARS])
    if len(words) < 5:
        return False
    stop = stop_words if stop_words is not None else _stop_words()
    return sum(w.lower() in stop for w in words) / len(words) >= MIN_STOPWORD_SHARE


class LexicalEncoder:
    """English text -> L2-normalised hashed row (1 x N_FEATURES); empty text -> None."""

    def __init__(self) -> None:
        from sklearn.feature_extraction import FeatureHasher

        self._hasher = FeatureHasher(
            n_features=N_FEATURES, input_type="dict", alternate_sign=False, dtype=np.float64
        )
        self._stop = _stop_words()

    def usable(self, text: str) -> bool:
        return looks_english(text or "", self._stop)

    def encode(self, text: str) -> csr_matrix | None:
        weights = term_weights(text or "", self._stop)
        if not weights:
            return None
        row = self._hasher.transform([weights]).tocsr()
        row.sum_duplicates()
        norm = float(np.sqrt(row.multiply(row).sum()))
        return row / norm if norm > 0 else None


class DocumentFrequencies:
    """Document frequencies over the articles seen so far, in processing order."""

    def __init__(self) -> None:
        self.df = np.zeros(N_FEATURES, dtype=np.float64)
        self.n_docs = 0

    def add(self, row: csr_matrix) -> None:
        self.df[row.indices] += 1.0
        self.n_docs += 1

    def idf(self) -> np.ndarray:
        # scikit-learn's smooth idf. The "+1" keeps terms shared by the few articles seen early
        # in a stream (the very evidence of a shared event) from weighing nothing.
        return np.log((1.0 + self.n_docs) / (1.0 + self.df)) + 1.0

    def idf_at(self, cols: np.ndarray) -> np.ndarray:
        """`idf()[cols]`, with the same arithmetic (equal bits), at only the columns needed."""
        return np.log((1.0 + self.n_docs) / (1.0 + self.df[cols])) + 1.0
