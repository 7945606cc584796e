"""Detect stage: the language of each article (and of each paragraph where scripts mix).

Nothing heavy here: langdetect is imported inside the functions that use it.
"""

from pipeline.detect.language import (
    LangGuess,
    detect_articles,
    detect_language,
    detect_paragraphs,
    normalise_lang,
)

__all__ = [
    "LangGuess",
    "detect_articles",
    "detect_language",
    "detect_paragraphs",
    "normalise_lang",
]
