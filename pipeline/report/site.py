"""Write the report site: `index.html` (events ranked by breadth, with filters) and
`events/<id>.html` (the aligned page of each event).

Self-contained: CSS, the few lines of filter JavaScript and the SVG are inline, and a Content
Security Policy forbids any network request, so it opens from `file://` or any static server.
Deterministic: no wall-clock time in any file and every list in a stable order, so a re-run
over the same warehouse produces the same bytes. A file is written only when its bytes differ
from what is on disk, and event pages of events that no longer exist are removed; the result
lists both, which is how a caller knows what a run changed.

A manifest (`.parallax-report.json`) keeps, per event page, a fingerprint of the event's inputs
(`pipeline.report.inputs`: one set-based digest query over the warehouse) and of the rendering
code, with the event's index row. An event whose fingerprint and page file are unchanged is not
even loaded: its index row comes from the manifest. So a refresh after every scheduled run
costs the digest query plus loading and rendering the events that moved, not the whole history
(loading every event to compare page models was the stage that grew with history).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.export.formats import jinja_env, render_html
from pipeline.export.statements import EventStatements, load_events
from pipeline.report.inputs import event_inputs

if TYPE_CHECKING:
    import duckdb

    from pipeline.settings import Settings

log = logging.getLogger(__name__)

EVENTS_DIR = "events"
MANIFEST = ".parallax-report.json"
MANIFEST_FORMAT = 2  # {"format", "pages": {name: {"fingerprint", "row"}}}
SPARK_BINS = 16
SPARK_W, SPARK_H = 96, 20


@dataclass
class SiteResult:
    out_dir: Path
    events: int = 0
    written: list[Path] = field(default_factory=list)  # new or changed files
    unchanged: int = 0
    removed: list[Path] = field(default_factory=list)
    loaded: int = 0  # events whose inputs moved, loaded and rendered
    seconds: float = 0.0

    @property
    def index(self) -> Path:
        return self.out_dir / "index.html"


@dataclass(frozen=True)
class SilentSide:
    side: str  # the silent language or outlet group
    outlets: list[str]  # its outlets' names


@dataclass(frozen=True)
class Blindspot:
    """One kind of silence about an event: who covered it, which sides said nothing."""

    kind: str  # 'language' or 'group'
    covered_by: list[str]  # the covering languages / groups
    silent: list[SilentSide]


@dataclass(frozen=True)
class IndexOutlet:
    outlet_id: str
    name: str
    lang: str


@dataclass(frozen=True)
class IndexRow:
    """What the index shows of one event: kept in the manifest, so an event whose inputs did
    not move is listed without loading it."""

    event_id: str
    label: str
    first_seen: datetime | None
    last_seen: datetime | None
    langs: tuple[str, ...]
    outlets: tuple[IndexOutlet, ...]
    articles: int
    divergences: int
    spark: str  # SVG points of the sparkline polyline
    href: str

    @property
    def breadth(self) -> int:
        return len(self.outlets) * max(len(self.langs), 1)

    @classmethod
    def of(cls, ev: EventStatements, href: str) -> IndexRow:
        return cls(
            ev.event_id,
            ev.label,
            ev.first_seen,
            ev.last_seen,
            tuple(ev.langs),
            tuple(IndexOutlet(o.outlet_id, o.name, o.lang) for o in ev.outlets),
            len(ev.articles),
            ev.divergence_count,
            _spark(ev),
            href,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["first_seen"] = _iso(self.first_seen)
        data["last_seen"] = _iso(self.last_seen)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexRow:
        return cls(
            data["event_id"],
            data["label"],
            _from_iso(data["first_seen"]),
            _from_iso(data["last_seen"]),
            tuple(data["langs"]),
            tuple(IndexOutlet(**o) for o in data["outlets"]),
            int(data["articles"]),
            int(data["divergences"]),
            data["spark"],
            data["href"],
        )


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None


def _from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class IndexEntry:
    row: IndexRow
    outlets_json: str
    langs_json: str
    blindspots: list[Blindspot] = field(default_factory=list)
    blind_json: str = "[]"  # the kinds of blindspot, for the filter


def report_dir(settings: Settings) -> Path:
    """Where scheduled runs keep the site: the analyst's bookmark."""
    return settings.runtime_dir / "report"


def page_name(event_id: str) -> str:
    """A file name for the event's page: the id itself when it is a safe name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", event_id).lstrip(".")[:80] or "event"
    if safe != event_id:
        safe += "-" + hashlib.sha256(event_id.encode()).hexdigest()[:10]
    return f"{safe}.html"


def build_site(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path,
    *,
    since: datetime | None = None,
    langs: Sequence[str] | None = None,
) -> SiteResult:
    """Write the site for events last seen at or after `since` covering any of `langs`.

    Only events whose input digest (`pipeline.report.inputs`) or the rendering code moved since
    the manifest was written are loaded and rendered; the others keep their page and their
    index row from the manifest, so a refresh costs the digest query plus the moved events."""
    t0 = time.perf_counter()
    result = SiteResult(out_dir=out_dir)
    wanted = [
        ei
        for ei in event_inputs(con)
        if (since is None or (ei.last_seen is not None and ei.last_seen >= since))
        and (not langs or set(langs) & set(ei.langs))
    ]
    (out_dir / EVENTS_DIR).mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST
    before = _read_manifest(manifest_path)
    code = _code_fingerprint()
    rows: dict[str, IndexRow] = {}
    pages: dict[str, dict[str, Any]] = {}
    moved: dict[str, str] = {}  # event_id -> fingerprint, for events to load and render
    for ei in wanted:
        name = page_name(ei.event_id)
        fingerprint = hashlib.sha256(f"{code}\n{ei.digest}".encode()).hexdigest()
        kept = before.get(name)
        if (
            kept
            and kept.get("fingerprint") == fingerprint
            and (out_dir / EVENTS_DIR / name).is_file()
        ):
            try:
                rows[ei.event_id] = IndexRow.from_json(kept["row"])
            except (KeyError, TypeError, ValueError):
                moved[ei.event_id] = fingerprint
                continue
            pages[name] = kept
            result.unchanged += 1
        else:
            moved[ei.event_id] = fingerprint
    result.loaded = len(moved)
    for ev in load_events(con, sorted(moved)) if moved else []:
        name = page_name(ev.event_id)
        _write(
            out_dir / EVENTS_DIR / name,
            render_html(ev, back_href="../index.html").encode("utf-8"),
            result,
        )
        rows[ev.event_id] = IndexRow.of(ev, f"{EVENTS_DIR}/{name}")
        pages[name] = {"fingerprint": moved[ev.event_id], "row": rows[ev.event_id].to_json()}
    blind = _blindspots(con)
    entries = [
        IndexEntry(
            row=row,
            outlets_json=json.dumps([o.outlet_id for o in row.outlets]),
            langs_json=json.dumps(sorted(row.langs)),
            blindspots=blind.get(row.event_id, []),
            blind_json=json.dumps([b.kind for b in blind.get(row.event_id, [])]),
        )
        for row in rows.values()
    ]
    entries.sort(
        key=lambda e: (
            -e.row.breadth,
            -e.row.articles,
            -(e.row.last_seen.timestamp() if e.row.last_seen else 0.0),
            e.row.event_id,
        )
    )
    _write(out_dir / "index.html", render_index(entries).encode("utf-8"), result)
    for path in sorted((out_dir / EVENTS_DIR).glob("*.html")):
        if path.name not in pages:
            path.unlink()
            result.removed.append(path)
    manifest = {"format": MANIFEST_FORMAT, "pages": pages}
    _write(manifest_path, (json.dumps(manifest, sort_keys=True) + "\n").encode(), None)
    result.events = len(rows)
    result.seconds = time.perf_counter() - t0
    log.info(
        "report: %d events (%d loaded), %d file(s) written, %d unchanged, %d removed in %.1fs",
        result.events,
        result.loaded,
        len(result.written),
        result.unchanged,
        len(result.removed),
        result.seconds,
    )
    return result


def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """Pages recorded by the last run; anything unreadable or of another format is empty (every
    page is then rendered and compared byte for byte, which is always correct)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return {}
    pages = data.get("pages")
    return pages if isinstance(pages, dict) else {}


def _blindspots(con: duckdb.DuckDBPyConnection) -> dict[str, list[Blindspot]]:
    """Every event's blindspots (the `blindspots` view, any number of covering outlets: the
    page's own filter sets the floor), silent outlets by name."""
    from pipeline.blindspots import fetch_blindspots

    names = dict(con.execute("SELECT outlet_id, coalesce(name, outlet_id) FROM outlets").fetchall())
    grouped: dict[str, dict[str, Blindspot]] = {}
    for row in fetch_blindspots(con, min_outlets=1):
        kinds = grouped.setdefault(row["event_id"], {})
        spot = kinds.setdefault(
            row["kind"], Blindspot(row["kind"], list(row["covered_by"] or []), [])
        )
        outlets = [names.get(o, o) for o in row["silent_outlets"] or []]
        spot.silent.append(SilentSide(row["silent"], outlets))
    return {
        event: [kinds[k] for k in sorted(kinds, key=lambda k: (k != "language", k))]
        for event, kinds in grouped.items()
    }


FILTER_JS = """\
(function () {
  var f = document.getElementById("filters");
  function apply() {
    var lang = f.lang.value, outlet = f.outlet.value, from = f.from.value, to = f.to.value;
    var blind = f.blind.checked, minout = Number(f.minout.value) || 1, bkind = f.bkind.value;
    var shown = 0;
    document.querySelectorAll("#events tbody tr").forEach(function (row) {
      var d = row.dataset, langs = JSON.parse(d.langs), outlets = JSON.parse(d.outlets);
      var ok = (!lang || langs.indexOf(lang) >= 0) && (!outlet || outlets.indexOf(outlet) >= 0) &&
        (!from || d.last >= from) && (!to || d.first <= to) &&
        (!f.div.checked || Number(d.div) > 0) && (!f.one.checked || langs.length === 1) &&
        (!blind || (Number(d.nout) >= minout &&
          JSON.parse(d.blind).filter(function (k) { return !bkind || k === bkind; }).length > 0));
      row.hidden = !ok;
      if (ok) shown++;
    });
    document.getElementById("shown").textContent = String(shown);
  }
  f.addEventListener("input", apply);
  f.addEventListener("change", apply);
  f.addEventListener("reset", function () { setTimeout(apply, 0); });
  apply();
})();
"""


def render_index(entries: Sequence[IndexEntry]) -> str:
    outlets: dict[str, tuple[str, str]] = {}
    langs: set[str] = set()
    last: datetime | None = None
    for e in entries:
        langs.update(e.row.langs)
        for o in e.row.outlets:
            outlets.setdefault(o.outlet_id, (o.name, o.lang))
        if e.row.last_seen and (last is None or e.row.last_seen > last):
            last = e.row.last_seen
    script_hash = hashlib.sha256(FILTER_JS.encode()).digest()
    import base64

    return (
        jinja_env()
        .get_template("index.html.j2")
        .render(
            entries=entries,
            langs=sorted(langs),
            outlets=sorted(outlets.items(), key=lambda kv: (kv[1][0].lower(), kv[0])),
            as_of=last,
            script=FILTER_JS,
            script_hash=base64.b64encode(script_hash).decode(),
            spark_w=SPARK_W,
            spark_h=SPARK_H,
        )
    )


def _spark(ev: EventStatements) -> str:
    """Polyline points: articles per time bin between the event's first and last article."""
    times = sorted(a.published_at.timestamp() for a in ev.articles if a.published_at)
    bins = [0] * SPARK_BINS
    if times:
        t0, span = times[0], times[-1] - times[0]
        for t in times:
            i = int((t - t0) / span * (SPARK_BINS - 1)) if span else SPARK_BINS // 2
            bins[i] += 1
    top = max(bins) or 1
    step = SPARK_W / (SPARK_BINS - 1)
    return " ".join(
        f"{i * step:.1f},{SPARK_H - 1 - (n / top) * (SPARK_H - 3):.1f}" for i, n in enumerate(bins)
    )


def _code_fingerprint() -> str:
    """Hash of the templates and the code that shapes a page: a change re-renders every page."""
    from pipeline import export

    root = Path(export.__file__).parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("*.py"), *(root / "templates").glob("*.j2")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _write(path: Path, data: bytes, result: SiteResult | None) -> None:
    """Write only when the bytes differ, through a temporary file (a reader never sees half)."""
    try:
        if path.read_bytes() == data:
            if result is not None:
                result.unchanged += 1
            return
    except FileNotFoundError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    if result is not None:
        result.written.append(path)
