"""Sentence links inside an event: which sentence of one outlet says what a sentence of another says.

Links are made on multilingual vectors of the ORIGINAL sentences, because translations may be
pending or (in tests) nonsense; English text, where both sides have it, and shared figures only
help. Raw e5 cosines of sentences on the same topic sit in a narrow band (0.78-0.89 across
languages, 0.84-0.98 within one), and a sentence with no counterpart still scores 0.80+ against
everything in a same-topic article. So each vector is first CENTRED on the mean vector of the
event's sentences in its language (the shared topic and the language offset removed), and the
cosine of centred vectors is the semantic score. Measured on the Rafah sample: true pairs
0.16-0.78 (median ~0.30), best pairs of unrelated articles up to ~0.27, and same-language pairs run
higher than cross-language ones, hence one threshold per language pair (DEFAULT_THRESHOLDS).

    score = semantic + min(VALUE_BONUS * shared values, VALUE_BONUS_CAP) + LEXICAL_WEIGHT * dice

where bonuses only count when semantic >= threshold - BONUS_WINDOW (they lift a near miss, never
make a link out of nothing). Links are one-to-one first (greedy on score, best first), then a
sentence may take up to MAX_LINKS links where another candidate is nearly as good (method "1:n").
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.align.numbers import Value, extract_values
from pipeline.records import Segment, StageResult, sha256_text

if TYPE_CHECKING:
    import duckdb

    from pipeline.align.divergences import Divergence
    from pipeline.align.vectors import Embedder

log = logging.getLogger(__name__)

# Centred-cosine thresholds per sorted language pair; "same"/"cross" for pairs not listed.
DEFAULT_THRESHOLDS: dict[str, float] = {"same": 0.30, "cross": 0.22}
VALUE_BONUS = 0.08  # per value (kind, unit, value) both sentences state
VALUE_BONUS_CAP = 0.16
LEXICAL_WEIGHT = 0.15  # times the Dice overlap of English content words
BONUS_WINDOW = 0.12
MAX_LINKS = 3  # links per sentence towards one other article
MANY_MARGIN = 0.08  # an extra link needs score >= threshold + margin and >= 90% of the best
SHRINK = 1.0  # centring subtracts n/(n+SHRINK) of the language mean: small pools less

_WORD = re.compile(r"[a-z][a-z'-]*[a-z]|\d+(?:[.,]\d+)*")


@dataclass(frozen=True)
class SegmentLink:
    event_id: str
    article_a: str  # article_a < article_b
    seg_a: int
    article_b: str
    seg_b: int
    score: float
    method: str  # "1:1" (greedy one-to-one) or "1:n" (an extra, nearly as good counterpart)


@dataclass(frozen=True)
class PairScores:
    """Scores between the sentences of two articles of different outlets (a < b)."""

    article_a: str
    article_b: str
    seg_a: tuple[int, ...]  # seg_no of each row
    seg_b: tuple[int, ...]  # seg_no of each column
    semantic: np.ndarray  # centred cosine, rows = sentences of a
    score: np.ndarray  # semantic + bonuses
    threshold: float


def threshold_for(lang_a: str, lang_b: str, table: Mapping[str, float] | None = None) -> float:
    table = {**DEFAULT_THRESHOLDS, **(table or {})}
    a, b = sorted((lang_a or "und", lang_b or "und"))
    key = f"{a}-{b}"
    if key in table:
        return table[key]
    return table["same"] if a == b else table["cross"]


def _centred(
    event_segments: Mapping[str, Sequence[Segment]],
    vectors: Mapping[tuple[str, int], np.ndarray],
) -> dict[tuple[str, int], np.ndarray]:
    """Vectors minus the (shrunk) mean of the event's sentence vectors in the same language."""
    pools: dict[str, list[np.ndarray]] = {}
    for segs in event_segments.values():
        for s in segs:
            vec = vectors.get((s.article_id, s.seg_no))
            if vec is not None:
                pools.setdefault(s.lang, []).append(vec)
    means = {
        lang: np.mean(vs, axis=0) * (len(vs) / (len(vs) + SHRINK)) for lang, vs in pools.items()
    }
    out: dict[tuple[str, int], np.ndarray] = {}
    for segs in event_segments.values():
        for s in segs:
            vec = vectors.get((s.article_id, s.seg_no))
            if vec is None:
                continue
            c = np.asarray(vec, dtype=np.float32) - means[s.lang]
            norm = float(np.linalg.norm(c))
            out[(s.article_id, s.seg_no)] = c / norm if norm > 0 else c
    return out


def _content_words(text: str, stop: frozenset[str]) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in stop and len(w) > 2)


def _value_keys(values: Iterable[Value]) -> set[tuple[str, str, float]]:
    return {(v.kind, v.unit, round(v.value, 6)) for v in values}


def pair_scores(
    event_segments: Mapping[str, Sequence[Segment]],
    outlets: Mapping[str, str],
    vectors: Mapping[tuple[str, int], np.ndarray],
    english: Mapping[tuple[str, int], str],
    *,
    values: Mapping[tuple[str, int], Sequence[Value]] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> list[PairScores]:
    """Score matrices for every pair of articles from different outlets in one event."""
    from pipeline.align.lexical import _stop_words

    stop = _stop_words()
    centred = _centred(event_segments, vectors)
    if values is None:
        values = {
            (s.article_id, s.seg_no): extract_values(s.text, s.lang)
            for segs in event_segments.values()
            for s in segs
        }
    keys = {k: _value_keys(v) for k, v in values.items()}
    words = {k: _content_words(t, stop) for k, t in english.items() if t}
    out: list[PairScores] = []
    for a, b in itertools.combinations(sorted(event_segments), 2):
        if outlets.get(a) == outlets.get(b):
            continue
        segs_a, segs_b = event_segments[a], event_segments[b]
        if not segs_a or not segs_b:
            continue
        dim = next(iter(centred.values())).shape[0] if centred else 1
        zero = np.zeros(dim, dtype=np.float32)
        va = np.stack([centred.get((a, s.seg_no), zero) for s in segs_a])
        vb = np.stack([centred.get((b, s.seg_no), zero) for s in segs_b])
        semantic = (va @ vb.T).astype(np.float32)
        threshold = threshold_for(segs_a[0].lang, segs_b[0].lang, thresholds)
        score = semantic.copy()
        for i, sa in enumerate(segs_a):
            for j, sb in enumerate(segs_b):
                if semantic[i, j] < threshold - BONUS_WINDOW:
                    continue
                ka, kb = (a, sa.seg_no), (b, sb.seg_no)
                shared = len(keys.get(ka, set()) & keys.get(kb, set()))
                bonus = min(VALUE_BONUS * shared, VALUE_BONUS_CAP)
                wa, wb = words.get(ka), words.get(kb)
                if wa and wb:
                    bonus += LEXICAL_WEIGHT * 2 * len(wa & wb) / (len(wa) + len(wb))
                score[i, j] += bonus
        out.append(
            PairScores(
                a,
                b,
                tuple(s.seg_no for s in segs_a),
                tuple(s.seg_no for s in segs_b),
                semantic,
                score,
                threshold,
            )
        )
    return out


def links_for_pair(pair: PairScores, event_id: str = "") -> list[SegmentLink]:
    """Greedy one-to-one links above the threshold, then capped one-to-many extras."""
    score, thr = pair.score, pair.threshold
    order = np.argsort(-score, axis=None, kind="stable")
    used_a: set[int] = set()
    used_b: set[int] = set()
    chosen: dict[tuple[int, int], str] = {}
    for flat in order:
        i, j = divmod(int(flat), score.shape[1])
        if score[i, j] < thr:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        chosen[(i, j)] = "1:1"
    count_a = dict.fromkeys(range(score.shape[0]), 0)
    count_b = dict.fromkeys(range(score.shape[1]), 0)
    for i, j in chosen:
        count_a[i] += 1
        count_b[j] += 1
    best_a, best_b = score.max(axis=1), score.max(axis=0)
    for flat in order:
        i, j = divmod(int(flat), score.shape[1])
        s = float(score[i, j])
        if s < thr + MANY_MARGIN:
            break
        if (i, j) in chosen or count_a[i] >= MAX_LINKS or count_b[j] >= MAX_LINKS:
            continue
        if s >= 0.9 * best_a[i] and s >= 0.9 * best_b[j]:
            chosen[(i, j)] = "1:n"
            count_a[i] += 1
            count_b[j] += 1
    return [
        SegmentLink(
            event_id,
            pair.article_a,
            pair.seg_a[i],
            pair.article_b,
            pair.seg_b[j],
            round(float(score[i, j]), 6),
            method,
        )
        for (i, j), method in sorted(chosen.items())
    ]


def link_sentences(
    event_segments: dict[str, list[Segment]],
    outlets: dict[str, str],
    vectors: dict[tuple[str, int], np.ndarray],
    english: dict[tuple[str, int], str],
    *,
    event_id: str = "",
    thresholds: Mapping[str, float] | None = None,
) -> list[SegmentLink]:
    """Links between sentences of articles from different outlets of one event.

    event_segments: article_id -> its segments; outlets: article_id -> outlet_id; vectors and
    english keyed by (article_id, seg_no) (english may be empty: links hold on vectors alone).
    """
    pairs = pair_scores(event_segments, outlets, vectors, english, thresholds=thresholds)
    return [link for pair in pairs for link in links_for_pair(pair, event_id)]


# ---------------------------------------------------------------- warehouse


def _english(con: duckdb.DuckDBPyConnection, article_ids: list[str]) -> dict[tuple[str, int], str]:
    """English per segment: the original for English, else the latest unflagged translation."""
    rows = con.execute(
        """
        WITH t AS (
            SELECT article_id, seg_no, arg_max(text_en, created_at) AS text_en
            FROM translations WHERE coalesce(flagged, '') = '' AND model_id <> 'identity'
            GROUP BY article_id, seg_no
        )
        SELECT s.article_id, s.seg_no,
               CASE WHEN s.lang = 'en' THEN s.text ELSE t.text_en END
        FROM segments s LEFT JOIN t USING (article_id, seg_no)
        WHERE s.article_id IN (SELECT unnest(?))
        """,
        [article_ids],
    ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows if r[2]}


# Bump when the linking code changes what it produces: every event is relinked once.
LINK_VERSION = 1

# Per event, a hash of everything its links are computed from: members and outlets, each
# member's text and number of segments, and its usable English (what `_english` picks).
_EVENT_INPUTS = """
WITH tr AS (
    SELECT article_id, count(DISTINCT seg_no) AS n, bit_xor(hash(seg_no, text_en)) AS h
    FROM translations WHERE coalesce(flagged, '') = '' AND model_id <> 'identity'
    GROUP BY article_id
), sg AS (
    SELECT article_id, count(*) AS n FROM segments GROUP BY article_id
)
SELECT ea.event_id, md5(string_agg(concat_ws('|', ea.article_id, a.outlet_id, a.text_sha256,
       coalesce(sg.n, 0), coalesce(tr.n, 0), coalesce(tr.h, 0)), ',' ORDER BY ea.article_id))
FROM event_articles ea
JOIN articles a USING (article_id)
LEFT JOIN sg USING (article_id)
LEFT JOIN tr USING (article_id)
GROUP BY ea.event_id
"""


@dataclass
class LinkInputs:
    """What linking a set of events reads from the warehouse (then no database is needed)."""

    targets: list[str]  # events whose links are rewritten
    multi: dict[str, dict[str, str]]  # of those, events with >1 outlet: article -> outlet
    segments: dict[str, list[Segment]]  # by article
    vectors: dict[tuple[str, int], np.ndarray]  # cached sentence vectors
    english: dict[tuple[str, int], str]
    fingerprints: dict[str, str]  # event -> inputs hash, for link_state
    orphans: bool  # also drop rows of events that no longer exist
    skipped: int = 0  # events left alone: inputs unchanged since their last link


@dataclass
class LinkOutput:
    """Links and divergences per rewritten event, and the sentence vectors embedded for them."""

    per_event: dict[str, tuple[list[SegmentLink], list[Divergence]]]
    new_vectors: list[tuple[str, int, str, str, np.ndarray]]  # article, seg, embedder, sha, vec
    fingerprints: dict[str, str]
    orphans: bool


def link_salt(embedder_name: str, thresholds: Mapping[str, float] | None) -> str:
    """The settings part of an event's fingerprint: a change relinks every event."""
    table = sorted((thresholds or DEFAULT_THRESHOLDS).items())
    knobs = (VALUE_BONUS, VALUE_BONUS_CAP, LEXICAL_WEIGHT, BONUS_WINDOW, MAX_LINKS, MANY_MARGIN)
    return f"v{LINK_VERSION}|{embedder_name}|{table}|{knobs}|{SHRINK}"


def read_link_inputs(
    con: duckdb.DuckDBPyConnection,
    event_ids: Sequence[str] | None,
    embedder: Embedder,
    *,
    only_changed: bool = False,
    thresholds: Mapping[str, float] | None = None,
) -> LinkInputs:
    """Read what linking needs. `event_ids` None: every event, and rows of vanished events are
    dropped; `only_changed`: only events whose inputs differ from their `link_state` hash."""
    salt = link_salt(embedder.name, thresholds)
    sql = _EVENT_INPUTS
    params: list[object] = []
    if event_ids is not None:
        sql = f"SELECT * FROM ({_EVENT_INPUTS}) WHERE event_id IN (SELECT unnest(?))"
        params.append(list(event_ids))
    fingerprints = {
        eid: sha256_text(f"{salt}|{digest}") for eid, digest in con.execute(sql, params).fetchall()
    }
    targets = sorted(fingerprints) if event_ids is None else list(event_ids)
    skipped = 0
    if only_changed:
        done = dict(con.execute("SELECT event_id, fingerprint FROM link_state").fetchall())
        kept = [e for e in targets if done.get(e) != fingerprints.get(e)]
        skipped = len(targets) - len(kept)
        targets = kept
    members: dict[str, dict[str, str]] = {}
    if targets:
        rows = con.execute(
            "SELECT ea.event_id, ea.article_id, a.outlet_id FROM event_articles ea "
            "JOIN articles a USING (article_id) WHERE ea.event_id IN (SELECT unnest(?))",
            [targets],
        ).fetchall()
        for event_id, article_id, outlet_id in rows:
            members.setdefault(event_id, {})[article_id] = outlet_id
    multi = {e: m for e, m in members.items() if len(set(m.values())) > 1}
    ids = sorted(a for m in multi.values() for a in m)
    by_article: dict[str, list[Segment]] = {}
    for row in con.execute(
        "SELECT article_id, seg_no, para_no, text, lang FROM segments "
        "WHERE article_id IN (SELECT unnest(?)) ORDER BY article_id, seg_no",
        [ids],
    ).fetchall():
        by_article.setdefault(row[0], []).append(Segment(*row))
    vectors: dict[tuple[str, int], np.ndarray] = {}
    if ids:
        table = con.execute(
            "SELECT article_id, seg_no, text_sha256, vector FROM segment_vectors "
            "WHERE embedder = ? AND article_id IN (SELECT unnest(?))",
            [embedder.name, ids],
        ).to_arrow_table()
        digest_of = {
            (s.article_id, s.seg_no): sha256_text(s.text)
            for segs in by_article.values()
            for s in segs
        }
        for aid, seg, digest, vec in zip(
            *(table.column(i).to_pylist() for i in range(4)), strict=True
        ):
            v = np.asarray(vec, dtype=np.float32)
            if digest_of.get((aid, seg)) == digest and v.shape == (embedder.dim,):
                vectors[(aid, seg)] = v
    return LinkInputs(
        targets=targets,
        multi=multi,
        segments=by_article,
        vectors=vectors,
        english=_english(con, ids) if ids else {},
        fingerprints={e: fingerprints[e] for e in targets if e in fingerprints},
        orphans=event_ids is None,
        skipped=skipped,
    )


def compute_links(
    inputs: LinkInputs,
    embedder: Embedder,
    result: StageResult,
    *,
    thresholds: Mapping[str, float] | None = None,
) -> LinkOutput:
    """Links and divergences of the target events, with no database open (sentences without a
    cached vector are embedded here and handed back to be stored)."""
    from pipeline.align.divergences import find_divergences

    vectors = dict(inputs.vectors)
    todo = [
        s
        for segs in inputs.segments.values()
        for s in segs
        if (s.article_id, s.seg_no) not in vectors and s.text.strip()
    ]
    new_vectors: list[tuple[str, int, str, str, np.ndarray]] = []
    if todo:
        todo.sort(key=lambda s: (len(s.text), s.article_id, s.seg_no))
        vecs = embedder.embed([s.text for s in todo]).astype(np.float32)
        for k, s in enumerate(todo):
            vectors[(s.article_id, s.seg_no)] = vecs[k]
            new_vectors.append(
                (s.article_id, s.seg_no, embedder.name, sha256_text(s.text), vecs[k])
            )
    log.info("link: %d segment vectors (%d embedded)", len(vectors), len(todo))
    per_event: dict[str, tuple[list[SegmentLink], list[Divergence]]] = {}
    for event_id in inputs.targets:
        links: list[SegmentLink] = []
        divergences: list[Divergence] = []
        if event_id in inputs.multi:
            outlets = inputs.multi[event_id]
            event_segments = {a: inputs.segments.get(a, []) for a in sorted(outlets)}
            values = {
                (s.article_id, s.seg_no): extract_values(s.text, s.lang)
                for segs in event_segments.values()
                for s in segs
            }
            pairs = pair_scores(
                event_segments,
                outlets,
                vectors,
                inputs.english,
                values=values,
                thresholds=thresholds,
            )
            links = [link for pair in pairs for link in links_for_pair(pair, event_id)]
            divergences = find_divergences(
                event_id, pairs, links, values, event_segments, inputs.english
            )
            result.add("events_linked")
        else:
            result.add("events_single_outlet")
        per_event[event_id] = (links, divergences)
        result.add("links", len(links))
        result.add("divergences", len(divergences))
    return LinkOutput(per_event, new_vectors, inputs.fingerprints, inputs.orphans)


def link_events(
    con: duckdb.DuckDBPyConnection,
    event_ids: Sequence[str] | None = None,
    embedder: Embedder | None = None,
    *,
    thresholds: Mapping[str, float] | None = None,
    only_changed: bool = False,
) -> StageResult:
    """Compute and store sentence links and divergences of events (all when event_ids is None)
    over one open connection. Idempotent: each event's rows are replaced; events with one
    outlet get none, and rows of events that no longer exist are dropped on a full run.
    (`pipeline.run.step_link` does the same with the file held only to read and to write.)"""
    from pipeline.warehouse import load_links

    t0 = time.perf_counter()
    result = StageResult("link")
    if embedder is None:
        log.warning("link: no embedder; sentence links and divergences are not computed")
        result.add("skipped_no_embedder")
        return result
    inputs = read_link_inputs(
        con, event_ids, embedder, only_changed=only_changed, thresholds=thresholds
    )
    if inputs.skipped:
        result.add("events_unchanged", inputs.skipped)
    output = compute_links(inputs, embedder, result, thresholds=thresholds)
    load_links(con, output)
    result.seconds = time.perf_counter() - t0
    log.info("link: %s in %.1fs", result.counts, result.seconds)
    return result
