"""Sentences within paragraphs, for Hebrew, Arabic and English news text.

Translation models work sentence by sentence, and sentence pairs are what the comparison links, so
a wrong split costs twice. No installed library splits Hebrew and Arabic well offline, so this is a
rule-based splitter: a sentence ends at . ! ? ؟ ۔ … (with any closing quotes or brackets) before
whitespace, unless the full stop belongs to an abbreviation, an initial, a list number, or the next
word starts in lower case. Hebrew gershayim/geresh (צה"ל, ח'ליל) sit inside words and are never
taken for quotes; decimals (4.8) have no space after the point and are never candidates.
"""

from __future__ import annotations

import logging
import re
import time

from pipeline.records import Article, Reject, Segment, StageResult

logger = logging.getLogger(__name__)

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
# A run of terminal punctuation, then closing quotes/brackets, then whitespace or the end.
_CANDIDATE_END = re.compile(r"(?:\.{2,}|[.!?؟۔…]+)[\"'”’»›)\]״׳]*(?=\s|$)")
_OPENING = "\"'“‘„«‹([״׳-–—"
# A line inside a paragraph that starts a list item: "1. ", "2) ", "- ", "• ".
_LIST_ITEM = re.compile(r"^\s*(?:\d{1,3}[.)]|[-•*–—·▪])\s")


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


# Never end a sentence: titles and references that always precede a name or number.
_PREFIX_ABBREVIATIONS = _words(
    """mr. mrs. ms. dr. prof. gen. lt. col. maj. capt. sgt. cpl. adm. brig. cmdr. rep. sen. gov.
    pres. rev. hon. st. mt. vs. v. e.g. i.e. cf. approx. fig. no. nos. vol. pp.
    jan. feb. mar. apr. jun. jul. aug. sep. sept. oct. nov. dec.
    מס. פרופ. רח. טל. עמ.
    د. أ. م. ص. ج. ش."""
)
# May end a sentence ("... sanctions on the U.S. The move"): a boundary only before a word that
# typically starts a sentence.
_AMBIGUOUS_ABBREVIATIONS = _words(
    """u.s. u.n. u.k. e.u. u.s.a. a.m. p.m. inc. ltd. co. corp. jr. sr. bros. etc. al."""
)
_SENTENCE_STARTERS = _words(
    """the a an he she it they we i you his her its their our this that these those there
    but and in on at after before meanwhile however earlier later when while if as according
    """
)
# "No." is an abbreviation only before a number ("No. 10"); "said no. Then" is a sentence end.
_NEEDS_DIGIT_AFTER = frozenset({"no.", "nos."})
_DOTTED_LETTERS = re.compile(r"(?:[^\W\d_]\.)+")
_LIST_NUMBER = re.compile(r"\d{1,3}\.")
_NEXT_WORD = re.compile(r"\s*(\S+)")


def split_paragraphs(text: str) -> list[str]:
    """Non-empty paragraphs of `text` (separated by blank lines), stripped; index = para_no."""
    return [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]


def _token_before(text: str, end: int, start: int) -> str:
    """The whitespace-delimited word ending at `end` (exclusive), without opening quotes."""
    i = end
    while i > start and not text[i - 1].isspace():
        i -= 1
    return text[i:end].lstrip(_OPENING)


def _next_word(text: str, pos: int) -> str:
    m = _NEXT_WORD.match(text, pos)
    return m.group(1).lstrip(_OPENING) if m else ""


def _is_boundary(text: str, match: re.Match[str], sent_start: int) -> bool:
    punct = match.group().rstrip("\"'”’»›)]״׳")
    nxt = _next_word(text, match.end())
    if not nxt:
        return True
    if nxt[0].islower():
        # '"Why?" she asked.' / 'approx. five' / 'wait... and see': one sentence.
        return False
    if punct != ".":
        return True  # ? ! ؟ ۔ and ellipses
    token = _token_before(text, match.start() + 1, sent_start)
    low = token.lower()
    if low in _NEEDS_DIGIT_AFTER:
        return not nxt[0].isdigit()
    if low in _PREFIX_ABBREVIATIONS:
        return False
    if low in _AMBIGUOUS_ABBREVIATIONS:
        return nxt.lower().strip(",;:") in _SENTENCE_STARTERS
    if _DOTTED_LETTERS.fullmatch(token):
        if len(token) == 2:
            return False  # an initial: "J. K. Rowling"
        return nxt.lower().strip(",;:") in _SENTENCE_STARTERS  # "U.S.A." and the like
    if _LIST_NUMBER.fullmatch(token):
        before = text[sent_start : match.start() + 1 - len(token)].rstrip()
        if not before or before.endswith(":"):
            return False  # a list number: "Demands: 1. A ceasefire. 2. ..."
    return True


def _split_line(line: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for match in _CANDIDATE_END.finditer(line):
        if _is_boundary(line, match, start):
            sentence = line[start : match.end()].strip()
            if sentence:
                sentences.append(sentence)
            start = match.end()
    rest = line[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


def _lines(paragraph: str) -> list[str]:
    """Join a paragraph's lines, keeping line breaks only before list items and after a colon."""
    lines = [ln.strip() for ln in paragraph.splitlines() if ln.strip()]
    if not lines:
        return []
    joined = [lines[0]]
    for line in lines[1:]:
        if _LIST_ITEM.match(line) or joined[-1].endswith(":"):
            joined.append(line)
        else:
            joined[-1] = f"{joined[-1]} {line}"
    return joined


def split_paragraph(paragraph: str) -> list[str]:
    """Sentences of one paragraph, in order, whitespace-trimmed."""
    return [s for line in _lines(paragraph) for s in _split_line(line)]


def split_sentences(text: str, lang: str = "") -> list[str]:
    """Sentences of `text`, paragraph by paragraph.

    The rules are script-aware rather than language-switched, because news text mixes scripts
    (English abbreviations in Arabic copy, Hebrew names in English); `lang` is accepted so callers
    state what they have and for rules that may need it later.
    """
    del lang
    return [s for p in split_paragraphs(text) for s in split_paragraph(p)]


# Clause boundaries for split_long, strongest first. Each splits *after* the matched text, except
# conjunctions, which start the next piece.
_CLAUSE_TIERS: tuple[re.Pattern[str], ...] = (
    re.compile(r"[;؛](?=\s)"),
    re.compile(r":(?=\s)"),
    re.compile(r"[,،](?=\s)"),
    re.compile(r"\s[—–-](?=\s)"),
    re.compile(
        r"(?<=\s)(?=(?:and|but|while|because|although|whereas|which|after|before|as|"
        r"אבל|אך|אולם|בעוד|כאשר|ולכן|משום|"
        r"لكن|ولكن|بينما|حيث|ثم|كما|لأن|بعد|قبل)\s)",
        re.IGNORECASE,
    ),
)


def _cut_points(sentence: str, pattern: re.Pattern[str]) -> list[int]:
    return [m.end() for m in pattern.finditer(sentence) if 0 < m.end() < len(sentence)]


def _split_on_whitespace(sentence: str, max_chars: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for word in sentence.split():
        if current and len(current) + 1 + len(word) > max_chars:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def _split_tier(sentence: str, max_chars: int, tier: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    if tier >= len(_CLAUSE_TIERS):
        return _split_on_whitespace(sentence, max_chars)
    cuts = _cut_points(sentence, _CLAUSE_TIERS[tier])
    if not cuts:
        return _split_tier(sentence, max_chars, tier + 1)
    bounds = [0, *cuts, len(sentence)]
    clauses = [sentence[a:b].strip() for a, b in zip(bounds, bounds[1:], strict=False)]
    pieces: list[str] = []
    current = ""
    for clause in filter(None, clauses):
        candidate = f"{current} {clause}" if current else clause
        if len(candidate) <= max_chars:
            current = candidate
            continue
        if current:
            pieces.append(current)
        if len(clause) <= max_chars:
            current = clause
        else:
            pieces.extend(_split_tier(clause, max_chars, tier + 1))
            current = ""
    if current:
        pieces.append(current)
    return pieces


def split_long(sentence: str, max_chars: int) -> list[str]:
    """Pieces of `sentence`, each at most `max_chars` long, cut at the strongest clause boundary
    available (؛ ; then : then , ، then dashes, then conjunctions, finally between words).

    Never cuts inside a word: a single word longer than `max_chars` (a URL) stays whole.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    sentence = sentence.strip()
    if not sentence:
        return []
    return _split_tier(sentence, max_chars, 0)


def segment_articles(
    articles: list[Article], *, max_chars: int = 400
) -> tuple[list[Segment], StageResult]:
    """Segments of every article: sentences numbered 0.. across the article, with their paragraph.

    Pure function of the text, so re-segmenting an unchanged article gives identical keys.
    An article with no text yields no segments and a reject ("empty_text"), never an exception.
    """
    t0 = time.perf_counter()
    result = StageResult("segment")
    segments: list[Segment] = []
    for article in articles:
        result.add("articles")
        seg_no = 0
        for para_no, paragraph in enumerate(split_paragraphs(article.text)):
            result.add("paragraphs")
            for sentence in split_paragraph(paragraph):
                pieces = split_long(sentence, max_chars)
                if len(pieces) > 1:
                    result.add("long_sentences_split")
                for piece in pieces:
                    segments.append(
                        Segment(article.article_id, seg_no, para_no, piece, article.lang)
                    )
                    seg_no += 1
        if seg_no == 0:
            result.rejects.append(
                Reject("segment", article.outlet_id, article.url, "empty_text", "no sentences")
            )
            logger.info("article %s has no text to segment", article.url)
        result.add("segments", seg_no)
    result.seconds = time.perf_counter() - t0
    return segments, result
