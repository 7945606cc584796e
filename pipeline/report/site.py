"""Write the report site: `index.html` (events ranked by breadth, with filters) and
`events/<id>.html` (the aligned page of each event).

Self-contained: CSS, the few lines of filter JavaScript and the SVG are inline, and a Content
Security Policy forbids any network request, so it opens from `file://` or any static server.
Deterministic: no wall-clock time in any file and every list in a stable order, so a re-run
over the same warehouse produces the same bytes. A file is written only when its bytes differ
from what is on disk, and event pages of events that no longer exist are removed; the result
lists both, which is how a caller knows what a run changed.

A manifest (`.parallax-report.json`) keeps, per event page, a fingerprint of its model (the
statement rows, notes, outlets and articles) and of the rendering code; a page whose
fingerprint and file are unchanged is not rendered again, so a refresh after every scheduled
run costs the loading plus the pages of the events that moved.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.export.formats import jinja_env, render_html
from pipeline.export.statements import EventStatements, load_events

if TYPE_CHECKING:
    import duckdb

    from pipeline.settings import Settings

log = logging.getLogger(__name__)

EVENTS_DIR = "events"
MANIFEST = ".parallax-report.json"
SPARK_BINS = 16
SPARK_W, SPARK_H = 96, 20


@dataclass
class SiteResult:
    out_dir: Path
    events: int = 0
    written: list[Path] = field(default_factory=list)  # new or changed files
    unchanged: int = 0
    removed: list[Path] = field(default_factory=list)
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
class IndexEntry:
    ev: EventStatements
    href: str
    breadth: int
    divergences: int
    spark: str  # SVG points of the sparkline polyline
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
    """Write the site for events last seen at or after `since` covering any of `langs`."""
    t0 = time.perf_counter()
    result = SiteResult(out_dir=out_dir)
    events = [
        ev
        for ev in load_events(con)
        if (since is None or (ev.last_seen is not None and ev.last_seen >= since))
        and (not langs or set(langs) & set(ev.langs))
    ]
    (out_dir / EVENTS_DIR).mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST
    try:
        before = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        before = {}
    code = _code_fingerprint()
    blind = _blindspots(con)
    manifest: dict[str, str] = {}
    entries = []
    keep = set()
    for ev in events:
        name = page_name(ev.event_id)
        keep.add(name)
        path = out_dir / EVENTS_DIR / name
        fingerprint = hashlib.sha256(f"{code}\n{ev!r}".encode()).hexdigest()
        manifest[name] = fingerprint
        if before.get(name) == fingerprint and path.is_file():
            result.unchanged += 1
        else:
            _write(path, render_html(ev, back_href="../index.html").encode("utf-8"), result)
        entries.append(
            IndexEntry(
                ev=ev,
                href=f"{EVENTS_DIR}/{name}",
                breadth=len(ev.outlets) * max(len(ev.langs), 1),
                divergences=ev.divergence_count,
                spark=_spark(ev),
                outlets_json=json.dumps([o.outlet_id for o in ev.outlets]),
                langs_json=json.dumps(sorted(ev.langs)),
                blindspots=blind.get(ev.event_id, []),
                blind_json=json.dumps([b.kind for b in blind.get(ev.event_id, [])]),
            )
        )
    entries.sort(
        key=lambda e: (
            -e.breadth,
            -len(e.ev.articles),
            -(e.ev.last_seen.timestamp() if e.ev.last_seen else 0.0),
            e.ev.event_id,
        )
    )
    _write(out_dir / "index.html", render_index(entries).encode("utf-8"), result)
    for path in sorted((out_dir / EVENTS_DIR).glob("*.html")):
        if path.name not in keep:
            path.unlink()
            result.removed.append(path)
    _write(manifest_path, (json.dumps(manifest, indent=0, sort_keys=True) + "\n").encode(), None)
    result.events = len(events)
    result.seconds = time.perf_counter() - t0
    log.info(
        "report: %d events, %d file(s) written, %d unchanged, %d removed in %.1fs",
        result.events,
        len(result.written),
        result.unchanged,
        len(result.removed),
        result.seconds,
    )
    return result


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
        langs.update(e.ev.langs)
        for o in e.ev.outlets:
            outlets.setdefault(o.outlet_id, (o.name, o.lang))
        if e.ev.last_seen and (last is None or e.ev.last_seen > last):
            last = e.ev.last_seen
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
