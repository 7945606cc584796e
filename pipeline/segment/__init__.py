"""Segment stage: articles into numbered sentences, Hebrew/Arabic punctuation aware."""

from pipeline.segment.sentences import (
    segment_articles,
    split_long,
    split_paragraph,
    split_paragraphs,
    split_sentences,
)

__all__ = [
    "segment_articles",
    "split_long",
    "split_paragraph",
    "split_paragraphs",
    "split_sentences",
]
