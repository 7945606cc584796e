"""One event as statements x outlets: the rows every export format renders.

A *statement* is a connected group of sentences joined by `segment_links` (what several outlets
say alike); a sentence without links is a statement of its own, *unique* to its outlet when the
event has more than one outlet (the rule of the `unique_statements` view). Figures found in
`divergences` are attached to the sentences on both sides.

Outlets are ordered by first publication (earliest article; undated last, then outlet id); the
first is the *first reporter*. Reading order of the statements: the first reporter's articles
in publication order, sentence by sentence; then each later outlet in turn, where statements it
carries that are not placed yet go just before the next already-placed statement of its own
text (so an outlet's extra sentences sit where it says them), or at the end when none follows.

Everything is loaded in a few set-wide queries (`load_events`), so the report site over
thousands of events costs five queries, not five per event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pipeline.export.text import safe_href, visible
from pipeline.records import RTL_LANGS

if TYPE_CHECKING:
    import duckdb

# The long format of CSV, Markdown and Parquet: one row per sentence (cell of the grid).
ROW_FIELDS: tuple[str, ...] = (
    "event_id",
    "statement",
    "outlet_id",
    "outlet",
    "lang",
    "article_id",
    "seg_no",
    "original",
    "english",
    "pending",
    "unique",
    "divergence_kinds",
)

_KIND_LABELS = {
    "duration": "duration",
    "count": "count",
    "percent": "percentage",
    "date": "date",
    "money": "amount",
    "number": "number",
    "name": "name",
}
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class UnknownEvent(LookupError):
    pass


@dataclass(frozen=True)
class StatementRow:
    """One sentence of one outlet in one statement row: a line of the CSV/Markdown/Parquet."""

    event_id: str
    statement: int  # 1-based, in reading order
    outlet_id: str
    outlet: str
    lang: str
    article_id: str
    seg_no: int
    original: str
    english: str  # the original itself for English; "" while the translation is pending
    pending: bool
    unique: bool
    divergence_kinds: str  # sorted kinds, comma-separated; "" when none

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in ROW_FIELDS}


@dataclass(frozen=True)
class DivergenceNote:
    """A figure of this sentence that another outlet states differently."""

    kind: str
    span: str  # this sentence's value as written
    value: str  # formatted ("4 weeks")
    other_span: str
    other_value: str
    other_outlet: str
    other_lang: str
    other_statement: int

    @property
    def label(self) -> str:
        return _KIND_LABELS.get(self.kind, self.kind)


@dataclass(frozen=True)
class NoteLine:
    """The notes of one sentence that name the same other figure, as one line."""

    kind: str
    other_value: str
    other_statement: int
    outlets: tuple[tuple[str, str], ...]  # (name, lang) of the outlets stating it


@dataclass(frozen=True)
class Piece:
    """A run of a sentence's text; `note` is set on a highlighted figure."""

    text: str
    note: DivergenceNote | None = None


@dataclass(frozen=True)
class Sentence:
    article_id: str
    seg_no: int
    outlet_id: str
    lang: str
    original: str
    english: str | None  # None while the translation is pending; the original for English
    flagged: str
    notes: tuple[DivergenceNote, ...] = ()

    @property
    def rtl(self) -> bool:
        return self.lang in RTL_LANGS

    @property
    def is_english(self) -> bool:
        return self.lang == "en"

    @cached_property
    def pieces(self) -> tuple[Piece, ...]:
        return _pieces(self.original, [(n.span, n) for n in self.notes])

    @cached_property
    def note_lines(self) -> tuple[NoteLine, ...]:
        lines: dict[tuple[str, str], list[DivergenceNote]] = {}
        for n in self.notes:
            lines.setdefault((n.kind, n.other_value), []).append(n)
        return tuple(
            NoteLine(
                kind,
                value,
                min(n.other_statement for n in ns),
                tuple(dict.fromkeys((n.other_outlet, n.other_lang) for n in ns)),
            )
            for (kind, value), ns in lines.items()
        )

    @cached_property
    def english_pieces(self) -> tuple[Piece, ...]:
        """The English with this sentence's divergent figures marked where it states them."""
        if self.english is None or not self.notes:
            return (Piece(self.english or ""),)
        from pipeline.align.numbers import extract_values

        marks = []
        for v in extract_values(self.english, "en"):
            for n in self.notes:
                if (
                    v.kind == n.kind
                    and v.text
                    and n.value == _format_value(v.kind, v.value, v.unit)
                ):
                    marks.append((v.text, n))
        return _pieces(self.english, marks)


@dataclass(frozen=True)
class Statement:
    number: int
    cells: tuple[tuple[Sentence, ...], ...]  # one per outlet, in outlet order; () when silent
    unique_to: str | None  # outlet_id when only that outlet says it (events of 2+ outlets)
    kinds: tuple[str, ...]  # divergence kinds of its sentences

    @property
    def gist(self) -> str:
        """A short English reading of the statement, for the sticky first column: an English
        original if an outlet has one, else the first translation, else the first original."""
        sentences = [s for cell in self.cells for s in cell]
        if not sentences:
            return ""
        best = min(
            sentences, key=lambda s: (not s.is_english, s.english is None or bool(s.flagged))
        )
        text = best.english if best.english is not None else best.original
        return text if len(text) <= 140 else text[:139] + "…"


@dataclass(frozen=True)
class OutletInfo:
    outlet_id: str
    name: str
    lang: str
    group: str
    first_published: datetime | None
    articles: int
    first_reporter: bool

    @property
    def rtl(self) -> bool:
        return self.lang in RTL_LANGS


@dataclass(frozen=True)
class ArticleInfo:
    article_id: str
    outlet_id: str
    title: str
    href: str | None  # None when the URL is not http(s)
    lang: str
    published_at: datetime | None

    @property
    def rtl(self) -> bool:
        return self.lang in RTL_LANGS


@dataclass(frozen=True)
class DifferValue:
    value: str  # formatted
    spans: tuple[str, ...]  # as written in the originals
    outlets: tuple[OutletInfo, ...]
    statement: int  # the row where it is first stated


@dataclass(frozen=True)
class DifferEntry:
    kind: str
    values: tuple[DifferValue, ...]

    @property
    def label(self) -> str:
        return _KIND_LABELS.get(self.kind, self.kind)


@dataclass(frozen=True)
class EventStatements:
    event_id: str
    label: str
    first_seen: datetime | None
    last_seen: datetime | None
    langs: tuple[str, ...]
    outlets: tuple[OutletInfo, ...]
    articles: tuple[ArticleInfo, ...]
    statements: tuple[Statement, ...]
    differ: tuple[DifferEntry, ...] = field(default=())

    @property
    def divergence_count(self) -> int:
        return sum(1 for _ in self.differ)

    def rows(self) -> list[StatementRow]:
        """The long format: statement order, then outlet order, then the outlet's text order."""
        out = []
        for st in self.statements:
            for outlet, cell in zip(self.outlets, st.cells, strict=True):
                for s in cell:
                    out.append(
                        StatementRow(
                            event_id=self.event_id,
                            statement=st.number,
                            outlet_id=outlet.outlet_id,
                            outlet=outlet.name,
                            lang=s.lang,
                            article_id=s.article_id,
                            seg_no=s.seg_no,
                            original=s.original,
                            english=s.english or "",
                            pending=s.english is None,
                            unique=st.unique_to is not None,
                            divergence_kinds=",".join(sorted({n.kind for n in s.notes})),
                        )
                    )
        return out


# ---------------------------------------------------------------- loading


def load_event(con: duckdb.DuckDBPyConnection, event_id: str) -> EventStatements:
    events = load_events(con, [event_id])
    if not events:
        raise UnknownEvent(
            f'no event {event_id!r}; list events with: parallax sql "select * from events"'
        )
    return events[0]


def load_events(
    con: duckdb.DuckDBPyConnection, event_ids: Sequence[str] | None = None
) -> list[EventStatements]:
    """Every event (or those listed), each with its statements, in event_id order."""
    if event_ids is None:
        return _load_events(con, "", [])
    from pipeline.warehouse import id_table

    with id_table(con, event_ids) as ids:
        return _load_events(con, f"WHERE event_id IN (SELECT id FROM {ids})", [])


def _load_events(
    con: duckdb.DuckDBPyConnection, where: str, params: list[Any]
) -> list[EventStatements]:
    heads = con.execute(
        f"SELECT event_id, label, first_seen, last_seen, langs FROM events {where} "
        "ORDER BY event_id",
        params,
    ).fetchall()
    members: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in con.execute(
        f"""
        SELECT ea.event_id, a.article_id, a.outlet_id, coalesce(o.name, a.outlet_id),
               coalesce(o.outlet_group, ''), coalesce(a.lang, o.lang, ''), coalesce(a.title, ''),
               a.url, a.published_at
        FROM event_articles ea JOIN articles a USING (article_id)
        LEFT JOIN outlets o ON o.outlet_id = a.outlet_id
        {where.replace("event_id", "ea.event_id")}
        """,
        params,
    ).fetchall():
        members[row[0]].append(row[1:])
    sentences: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in con.execute(
        f"""
        SELECT ea.event_id, p.article_id, p.seg_no, coalesce(p.lang, ''), p.original, p.english,
               coalesce(p.flagged, '')
        FROM parallel_text p JOIN event_articles ea USING (article_id)
        {where.replace("event_id", "ea.event_id")}
        """,
        params,
    ).fetchall():
        sentences[row[0]].append(row[1:])
    links: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in con.execute(
        f"SELECT event_id, article_a, seg_a, article_b, seg_b FROM segment_links {where}", params
    ).fetchall():
        links[row[0]].append(row[1:])
    divergences: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in con.execute(
        f"""
        SELECT event_id, article_a, seg_a, article_b, seg_b, kind, span_a, span_b,
               value_a, value_b, unit
        FROM divergences {where}
        ORDER BY article_a, seg_a, article_b, seg_b, kind, value_a, value_b
        """,
        params,
    ).fetchall():
        divergences[row[0]].append(row[1:])
    return [
        _build(
            event_id,
            label or event_id,
            _utc(first),
            _utc(last),
            tuple(langs or ()),
            members.get(event_id, []),
            sentences.get(event_id, []),
            links.get(event_id, []),
            divergences.get(event_id, []),
        )
        for event_id, label, first, last, langs in heads
    ]


def _utc(ts: datetime | None) -> datetime | None:
    """Timestamps in UTC whatever the session time zone, so output never depends on the host."""
    if ts is None:
        return None
    return ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)


_NEVER = datetime.max.replace(tzinfo=UTC)

Key = tuple[str, int]  # (article_id, seg_no)


def _build(
    event_id: str,
    label: str,
    first_seen: datetime | None,
    last_seen: datetime | None,
    langs: tuple[str, ...],
    members: list[tuple[Any, ...]],
    sentence_rows: list[tuple[Any, ...]],
    link_rows: list[tuple[Any, ...]],
    divergence_rows: list[tuple[Any, ...]],
) -> EventStatements:
    articles = sorted(
        (
            ArticleInfo(aid, oid, visible(title), safe_href(url), lang, _utc(pub))
            for aid, oid, _, _, lang, title, url, pub in members
        ),
        key=lambda a: (a.published_at or _NEVER, a.article_id),
    )
    names = {m[1]: (m[2], m[3]) for m in members}
    by_outlet: dict[str, list[ArticleInfo]] = defaultdict(list)
    for art in articles:
        by_outlet[art.outlet_id].append(art)
    outlet_ids = sorted(by_outlet, key=lambda o: (by_outlet[o][0].published_at or _NEVER, o))
    outlets = tuple(
        OutletInfo(
            outlet_id=oid,
            name=visible(names[oid][0]),
            lang=_outlet_lang(by_outlet[oid]),
            group=visible(names[oid][1]),
            first_published=by_outlet[oid][0].published_at,
            articles=len(by_outlet[oid]),
            first_reporter=i == 0,
        )
        for i, oid in enumerate(outlet_ids)
    )
    outlet_of = {a.article_id: a.outlet_id for a in articles}
    outlet_rank = {o.outlet_id: i for i, o in enumerate(outlets)}
    outlet_by_id = {o.outlet_id: o for o in outlets}

    raw: dict[Key, tuple[str, str, str | None, str]] = {}
    for aid, seg_no, lang, original, english, flagged in sentence_rows:
        if lang == "en":
            english = original
        raw[(aid, seg_no)] = (lang, original, english, flagged)

    # Statements: connected groups of linked sentences (union-find).
    parent: dict[Key, Key] = {k: k for k in raw}

    def find(k: Key) -> Key:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a, sa, b, sb in link_rows:
        ka, kb = (a, sa), (b, sb)
        if ka in parent and kb in parent:
            ra, rb = find(ka), find(kb)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

    # Reading order: see the module docstring.
    segs_of: dict[str, list[int]] = defaultdict(list)
    for aid, seg in sorted(raw):
        segs_of[aid].append(seg)
    reading = {
        oid: [(a.article_id, s) for a in by_outlet[oid] for s in segs_of[a.article_id]]
        for oid in outlet_ids
    }
    order: list[Key] = []
    placed: set[Key] = set()
    for oid in outlet_ids:
        pending: list[Key] = []  # this outlet's statements not placed yet, in its text order
        for key in reading[oid]:
            root = find(key)
            if root in placed:
                at = order.index(root)  # the pending run goes just before this shared statement
                order[at:at] = pending
                placed.update(pending)
                pending = []
            elif root not in pending:
                pending.append(root)
        order.extend(pending)
        placed.update(pending)
    number = {root: i + 1 for i, root in enumerate(order)}

    # Divergence notes on both sides.
    notes: dict[Key, list[DivergenceNote]] = defaultdict(list)
    for a, sa, b, sb, kind, span_a, span_b, value_a, value_b, unit in divergence_rows:
        ka, kb = (a, sa), (b, sb)
        if ka not in raw or kb not in raw:
            continue
        fa, fb = _format_value(kind, value_a, unit), _format_value(kind, value_b, unit)
        oa, ob = outlet_by_id[outlet_of[a]], outlet_by_id[outlet_of[b]]
        notes[ka].append(
            DivergenceNote(
                kind, visible(span_a), fa, visible(span_b), fb, ob.name, ob.lang, number[find(kb)]
            )
        )
        notes[kb].append(
            DivergenceNote(
                kind, visible(span_b), fb, visible(span_a), fa, oa.name, oa.lang, number[find(ka)]
            )
        )

    members_of: dict[Key, list[Key]] = defaultdict(list)
    for oid in outlet_ids:
        for key in reading[oid]:
            members_of[find(key)].append(key)
    statements = []
    for root in order:
        cells: list[list[Sentence]] = [[] for _ in outlets]
        for key in members_of[root]:
            lang, original, english, flagged = raw[key]
            oid = outlet_of[key[0]]
            cells[outlet_rank[oid]].append(
                Sentence(
                    key[0],
                    key[1],
                    oid,
                    lang,
                    visible(original),
                    None if english is None else visible(english),
                    flagged,
                    tuple(notes.get(key, ())),
                )
            )
        speaking = {outlet_of[k[0]] for k in members_of[root]}
        statements.append(
            Statement(
                number=number[root],
                cells=tuple(tuple(c) for c in cells),
                unique_to=next(iter(speaking)) if len(speaking) == 1 and len(outlets) > 1 else None,
                kinds=tuple(sorted({n.kind for k in members_of[root] for n in notes.get(k, ())})),
            )
        )
    return EventStatements(
        event_id=event_id,
        label=visible(label),
        first_seen=first_seen,
        last_seen=last_seen,
        langs=langs,
        outlets=outlets,
        articles=tuple(articles),
        statements=tuple(statements),
        differ=_differ(divergence_rows, raw, outlet_of, outlets, find, number),
    )


def _outlet_lang(arts: list[ArticleInfo]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for a in arts:
        counts[a.lang] += 1
    return min(counts, key=lambda lang: (-counts[lang], lang)) if counts else ""


def _differ(
    rows: Iterable[tuple[Any, ...]],
    raw: dict[Key, tuple[str, str, str | None, str]],
    outlet_of: dict[str, str],
    outlets: tuple[OutletInfo, ...],
    root_of: Callable[[Key], Key],
    number: dict[Key, int],
) -> tuple[DifferEntry, ...]:
    """ "Where outlets differ": divergences of one kind and unit that touch the same sentences
    form one entry, listing each figure with the outlets that state it."""
    outlet_by_id = {o.outlet_id: o for o in outlets}
    rank = {o.outlet_id: i for i, o in enumerate(outlets)}
    parent: dict[tuple[str, str, Key], tuple[str, str, Key]] = {}

    def top(n: tuple[str, str, Key]) -> tuple[str, str, Key]:
        parent.setdefault(n, n)
        while parent[n] != n:
            n = parent[n]
        return n

    sides: list[tuple[tuple[str, str, Key], float, str, str, Key]] = []
    for a, sa, b, sb, kind, span_a, span_b, value_a, value_b, unit in rows:
        ka, kb = (a, sa), (b, sb)
        if ka not in raw or kb not in raw:
            continue
        na, nb = (kind, unit, ka), (kind, unit, kb)
        ra, rb = top(na), top(nb)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
        sides.append((na, value_a, unit, span_a, ka))
        sides.append((nb, value_b, unit, span_b, kb))
    groups: dict[tuple[str, str, Key], dict[float, list[tuple[str, str, Key]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for node, value, unit, span, key in sides:
        groups[top(node)][round(value, 6)].append((unit, span, key))
    # Components stating the same figures (a second sentence pair repeating the dispute) merge.
    merged: dict[tuple[str, str, tuple[float, ...]], dict[float, list[tuple[str, str, Key]]]] = {}
    for root, values in groups.items():
        slot = merged.setdefault((root[0], root[1], tuple(sorted(values))), defaultdict(list))
        for value, where in values.items():
            slot[value].extend(where)
    entries = []
    for (kind, _, _), values in merged.items():
        vals = []
        for value, where in sorted(values.items()):
            keys = sorted({k for _, _, k in where}, key=lambda k: (number[root_of(k)], k))
            outlet_ids = sorted({outlet_of[k[0]] for k in keys}, key=rank.__getitem__)
            vals.append(
                DifferValue(
                    value=_format_value(kind, value, where[0][0]),
                    spans=tuple(sorted({visible(s) for _, s, _ in where})),
                    outlets=tuple(outlet_by_id[o] for o in outlet_ids),
                    statement=number[root_of(keys[0])],
                )
            )
        entries.append(DifferEntry(kind, tuple(vals)))
    entries.sort(key=lambda e: (min(v.statement for v in e.values), e.kind))
    return tuple(entries)


def _pieces(text: str, marks: list[tuple[str, DivergenceNote]]) -> tuple[Piece, ...]:
    """Split text into runs, marking the first free occurrence of each span."""
    spans: list[tuple[int, int, DivergenceNote]] = []
    for span, note in marks:
        if not span:
            continue
        start = 0
        while (i := text.find(span, start)) >= 0:
            if all(i >= e or i + len(span) <= s for s, e, _ in spans):
                spans.append((i, i + len(span), note))
                break
            start = i + 1
    if not spans:
        return (Piece(text),)
    spans.sort(key=lambda x: x[0])
    out: list[Piece] = []
    pos = 0
    for s, e, note in spans:
        if s > pos:
            out.append(Piece(text[pos:s]))
        out.append(Piece(text[s:e], note))
        pos = e
    if pos < len(text):
        out.append(Piece(text[pos:]))
    return tuple(out)


def _num(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:,.2f}".rstrip("0").rstrip(".")


def _format_value(kind: str, value: float, unit: str) -> str:
    """A normalised value as a reader says it: 28 days -> "4 weeks", 1112 mmdd -> "12 Nov"."""
    if kind == "duration":
        for size, name in ((365, "year"), (30, "month"), (7, "week"), (1, "day")):
            if value >= size and (value / size).is_integer():
                n = value / size
                return f"{_num(n)} {name}{'' if n == 1 else 's'}"
        hours = value * 24
        return f"{_num(round(hours, 2))} hour{'' if hours == 1 else 's'}"
    if kind == "percent":
        return f"{_num(value)}%"
    if kind == "date":
        v = int(value)
        if unit == "yyyymmdd":
            return f"{v % 100} {_MONTHS[(v // 100) % 100 - 1]} {v // 10000}"
        if unit == "mmdd" and 1 <= v // 100 <= 12:
            return f"{v % 100} {_MONTHS[v // 100 - 1]}"
    return f"{_num(value)} {unit}".strip()
