"""A synthetic warehouse for the report: events over up to 12 outlets, linked sentences, figures.

Used by the browser test (a 12-outlet event page must stay readable) and by
`bench/bench_report.py` (10,000 articles). Texts come from templates: no real article text.
Each event's articles share SHARED sentences linked across outlets (sentence j of the event's
first article with sentence j of every other article); the rest are unique; about a third of
the multi-outlet events state a duration differently (weeks on one side, months on the other).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pipeline import warehouse
from pipeline.records import (
    Article,
    Event,
    EventArticle,
    Outlet,
    Segment,
    Translation,
    article_id_for,
    sha256_text,
)

if TYPE_CHECKING:
    import duckdb

START = datetime(2026, 11, 1, tzinfo=UTC)
SHARED = 4  # linked sentences per article
SENTENCES = 7  # sentences per article
LANGS = ("he", "ar", "en")
OUTLET_NAMES = {
    "he": ["HaBoker", "Zman Yisrael", "Kol HaIr", "Maariv Layla"],
    "ar": ["Al-Sharq Net", "Al-Quds Daily", "Sawt al-Khalij", "Al-Madina Post"],
    "en": ["Daily Ledger", "Levant Wire", "Morning Courier", "Gulf Observer"],
}
WEEKS = {"he": "{n} שבועות", "ar": "{n} أسابيع", "en": "{n} weeks"}
MONTHS = {"he": "{n} חודשים", "ar": "{n} أشهر", "en": "{n} months"}
TEMPLATES = {
    "he": [
        "ראש הממשלה נפגש עם המשלחת בנושא {topic} ודן בלוח הזמנים של {dur}.",
        "גורם מדיני אמר כי השיחות על {topic} יימשכו גם בשבוע הבא.",
        "לדברי הדוברת, נציגי הצדדים הציגו הצעה מעודכנת בעניין {topic}.",
        "בירושלים העריכו כי ההסכם בנושא {topic} קרוב מתמיד.",
        "תושבי האזור הביעו דאגה מההשלכות של {topic}.",
        "הכתב שלנו מדווח על התפתחויות נוספות בערב.",
        "הדיונים בנושא {topic} צפויים להתחדש ביום ראשון.",
    ],
    "ar": [
        "التقى رئيس الوزراء بالوفد لبحث {topic} والجدول الزمني لمدة {dur}.",
        "قال مصدر سياسي إن المحادثات حول {topic} ستستمر الأسبوع المقبل.",
        "وبحسب المتحدثة، قدم ممثلو الطرفين اقتراحا محدثا بشأن {topic}.",
        "وقدرت مصادر أن الاتفاق بشأن {topic} أقرب من أي وقت مضى.",
        "أعرب سكان المنطقة عن قلقهم من تداعيات {topic}.",
        "ويفيد مراسلنا بتطورات إضافية في المساء.",
        "ومن المتوقع أن تستأنف المناقشات حول {topic} يوم الأحد.",
    ],
    "en": [
        "The prime minister met the delegation on {topic} and discussed a timeline of {dur}.",
        "A political source said talks on {topic} would continue next week.",
        "According to the spokeswoman, both sides presented an updated proposal on {topic}.",
        "Officials estimated that a deal on {topic} was closer than ever.",
        "Residents of the area voiced concern about the consequences of {topic}.",
        "Our correspondent reports further developments in the evening.",
        "Discussions on {topic} are expected to resume on Sunday.",
    ],
}
TOPICS = [
    "the crossing",
    "the water deal",
    "the port",
    "the border fence",
    "the ceasefire",
    "the prisoner exchange",
    "the power plant",
    "the fishing zone",
    "the aid corridor",
]


@dataclass(frozen=True)
class Synthetic:
    events: list[str]
    articles: int
    widest: str  # the event with the most outlets


def outlets(n: int = 12) -> list[Outlet]:
    out = []
    for i in range(n):
        lang = LANGS[i % 3]
        name = OUTLET_NAMES[lang][(i // 3) % 4]
        out.append(
            Outlet(
                f"{lang}{i // 3 + 1}",
                name,
                lang,
                f"http://127.0.0.1/{lang}{i}/feed",
                group={"he": "israeli", "ar": "arab", "en": "international"}[lang],
            )
        )
    return out


def fill(
    con: duckdb.DuckDBPyConnection,
    n_articles: int,
    *,
    n_outlets: int = 12,
    seed: int = 0,
    widest_outlets: int | None = None,
) -> Synthetic:
    """Fill an empty warehouse with about `n_articles` articles in events of 1..n_outlets."""
    rng = random.Random(seed)
    outs = outlets(n_outlets)
    warehouse.upsert_outlets(con, outs)
    articles: list[Article] = []
    segments: list[Segment] = []
    translations: list[Translation] = []
    events: list[Event] = []
    members: list[EventArticle] = []
    links: list[tuple[object, ...]] = []
    divergences: list[tuple[object, ...]] = []
    widest = ""
    e = 0
    while len(articles) < n_articles:
        k = (
            widest_outlets
            if e == 0 and widest_outlets
            else rng.choice([1, 1, 1, 2, 2, 3, 3, 4, 5, 6, 8, 12])
        )
        k = min(k, n_outlets)
        chosen = rng.sample(outs, k)
        start = START + timedelta(hours=e * 0.4)
        topic = rng.choice(TOPICS)
        event_id = f"ev_syn{e:05d}"
        diverge = k > 1 and rng.random() < 0.35
        arts = []
        for j, o in enumerate(chosen):
            url = f"http://127.0.0.1/{o.outlet_id}/{event_id}"
            dur = (MONTHS if diverge and j % 2 else WEEKS)[o.lang].format(n=4)
            sents = [t.format(topic=topic, dur=dur) for t in TEMPLATES[o.lang]]
            sents[-1] += f" ({e})"  # every article's text its own (no same-outlet duplicates)
            text = "\n\n".join(sents)
            pub = start + timedelta(minutes=rng.randint(0, 600))
            art = Article(
                article_id_for(url),
                o.outlet_id,
                url,
                f"{topic} ({o.name}) {e}",
                pub,
                text,
                "page",
                sha256_text(text),
                o.lang,
                0.99,
                "script",
            )
            arts.append(art)
            for s_no, s in enumerate(sents):
                segments.append(Segment(art.article_id, s_no, s_no, s, o.lang))
                english = TEMPLATES["en"][s_no].format(
                    topic=topic, dur=(MONTHS if diverge and j % 2 else WEEKS)["en"].format(n=4)
                ) + (f" ({e})" if s_no == len(sents) - 1 else "")
                translations.append(
                    Translation(
                        art.article_id,
                        s_no,
                        "identity" if o.lang == "en" else "synthetic",
                        s if o.lang == "en" else english,
                        sha256_text(s),
                    )
                )
        arts.sort(key=lambda a: a.published_at or START)
        articles.extend(arts)
        first = arts[0]
        for other in arts[1:]:
            a, b = sorted((first.article_id, other.article_id))
            for s_no in range(SHARED):
                links.append((event_id, a, s_no, b, s_no, 0.5, "1:1"))
        if diverge:
            weeks = [x for j, x in enumerate(chosen) if j % 2 == 0]
            months = [x for j, x in enumerate(chosen) if j % 2]
            by_outlet = {x.outlet_id: x for x in arts}
            for w in weeks:
                for m in months:
                    aw, am = by_outlet[w.outlet_id], by_outlet[m.outlet_id]
                    sw, sm = WEEKS[w.lang].format(n=4), MONTHS[m.lang].format(n=4)
                    if aw.article_id < am.article_id:
                        divergences.append(
                            (
                                event_id,
                                aw.article_id,
                                0,
                                am.article_id,
                                0,
                                "duration",
                                sw,
                                sm,
                                28.0,
                                120.0,
                                "day",
                                "",
                                "",
                            )
                        )
                    else:
                        divergences.append(
                            (
                                event_id,
                                am.article_id,
                                0,
                                aw.article_id,
                                0,
                                "duration",
                                sm,
                                sw,
                                120.0,
                                28.0,
                                "day",
                                "",
                                "",
                            )
                        )
        pubs = [a.published_at for a in arts if a.published_at]
        events.append(
            Event(
                event_id,
                f"Talks on {topic} #{e}",
                min(pubs),
                max(pubs),
                tuple(sorted(o.outlet_id for o in chosen)),
                tuple(sorted({o.lang for o in chosen})),
                len(arts),
            )
        )
        members.extend(EventArticle(event_id, a.article_id, 0.9) for a in arts)
        if not widest or k > len(events[[ev.event_id for ev in events].index(widest)].outlets):
            widest = event_id
        e += 1
    # Set-based loads through Arrow: the row loaders are built for stage-sized batches.
    seen = START
    _bulk(
        con,
        "articles",
        [{**asdict(a), "version": 1, "first_seen_at": seen, "updated_at": seen} for a in articles],
    )
    _bulk(con, "segments", [asdict(x) for x in segments])
    _bulk(con, "translations", [{**asdict(t), "created_at": seen} for t in translations])
    _bulk(
        con,
        "events",
        [{**asdict(ev), "outlets": list(ev.outlets), "langs": list(ev.langs)} for ev in events],
    )
    _bulk(con, "event_articles", [asdict(m) for m in members])
    for table, rows in (("segment_links", links), ("divergences", divergences)):
        names = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        _bulk(con, table, [dict(zip(names, r, strict=True)) for r in rows])
    return Synthetic([ev.event_id for ev in events], len(articles), widest)


def _bulk(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, object]]) -> None:
    import pyarrow as pa

    if not rows:
        return
    arrow = pa.Table.from_pylist(rows)
    cols = ", ".join(arrow.column_names)
    con.register("_syn_rows", arrow)
    try:
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _syn_rows")
    finally:
        con.unregister("_syn_rows")
