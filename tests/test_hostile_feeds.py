"""Every file of the hostile feed corpus (../shared/hostile-feeds) through the feed parser.

The corpus MANIFEST.tsv says, per file, what a robust consumer should do
(``robust_consumer_should``), what feedparser's own test expects (``upstream_expect``, of which
only the bozo verdict maps onto our records) and which Content-Type to serve it with
(``http_header``). Files with a header also go through the real HTTP path from a local server.
Nothing may raise, each call is bounded in time and memory, entity declarations are refused,
and no local file content ever appears in the output.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.ingest.feeds import FATAL_FEED_REASONS, entry_text_fields, parse_feed
from pipeline.ingest.http import FetchError, fetch, make_client
from pipeline.records import FeedItem, Outlet, Reject
from pipeline.settings import PROJECT_ROOT, IngestSettings
from tests.fixtures.ingest.server import Route, Served, serve

# The corpus lives beside the project (../shared/hostile-feeds), not in it; an environment
# variable may point elsewhere.
CORPUS = Path(
    os.environ.get("PARALLAX_HOSTILE_FEEDS", PROJECT_ROOT.parent / "shared" / "hostile-feeds")
)
MANIFEST = CORPUS / "MANIFEST.tsv"
ROWS: list[dict[str, str]] = (
    list(csv.DictReader(MANIFEST.open(encoding="utf-8"), delimiter="\t"))
    if MANIFEST.is_file()
    else []
)
pytestmark = pytest.mark.skipif(not ROWS, reason=f"hostile feed corpus not found at {CORPUS}")

OUTLET = Outlet(outlet_id="hostile", name="Hostile", lang="", feed_url="http://127.0.0.1/feed.xml")
# A generous bound: it catches entity blow-ups (minutes, hundreds of MB unguarded), not speed;
# the memory cap is the sharp guard. CI machines may be loaded.
MAX_SECONDS = 20.0
MAX_PEAK_BYTES = 64 * 1024 * 1024
BOZO_REASONS = {"feed_bozo", "feed_malformed"}
ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
# Lines of local files an XXE payload would pull in; none may ever appear in our output.
SECRETS = (
    [line for line in Path("/etc/passwd").read_text().splitlines()[:3] if line]
    if Path("/etc/passwd").is_file()
    else []
)
SUMMARY: Counter[str] = Counter()

# Where our verdict differs from feedparser's test expectation on purpose.
DIVERGENCES = {
    # A DOCTYPE with entity declarations is refused before parsing (feedparser expands them).
    "feedparser/wellformed/rss/entity_in_doctype.xml",
    "feedparser/wellformed/rdf/doctype_contains_entity_decl.xml",
}


def _texts(items: list[FeedItem], rejects: list[Reject]) -> str:
    parts: list[str] = []
    for item in items:
        parts += [item.url, item.raw_url, item.title, item.summary, item.content, item.feed_lang]
    for reject in rejects:
        parts += [reject.url, reject.reason, reject.detail]
    return "\n".join(parts)


def _bounded_parse(data: bytes, **kwargs: str | None) -> tuple[list[FeedItem], list[Reject]]:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        items, rejects = parse_feed(data, OUTLET, **kwargs)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < MAX_SECONDS, f"took {elapsed:.2f}s"
    assert peak < MAX_PEAK_BYTES, f"peak memory {peak / 1e6:.0f} MB"
    out = _texts(items, rejects)
    for secret in SECRETS:
        assert secret not in out, "local file content leaked into the output"
    return items, rejects


def _check_expectations(
    row: dict[str, str], data: bytes, items: list[FeedItem], rejects: list[Reject]
) -> None:
    reasons = {r.reason for r in rejects}
    should = row["robust_consumer_should"]
    expect = row["upstream_expect"].strip()
    if ENTITY_DECL.search(data.replace(b"\x00", b"")):
        assert reasons == {"feed_entities"} and not items
        return
    if should.startswith("reject with reason"):
        assert not items, "an attack file yielded items"
        return
    if row["path"] in DIVERGENCES:
        return
    if expect.startswith("bozo"):
        assert reasons & BOZO_REASONS, f"expected a malformed flag, got {sorted(reasons)}"
    elif expect.startswith("not bozo"):
        assert not reasons & BOZO_REASONS, (
            f"unexpected malformed flag: {[r.detail for r in rejects]}"
        )
    if (
        should.startswith("parse ok")
        and "flag malformed" not in should
        and "may reject" not in should
    ):
        assert "feed_malformed" not in reasons, [r.detail for r in rejects]


@pytest.mark.parametrize("row", ROWS, ids=[r["path"] for r in ROWS])
def test_parse_bytes(row: dict[str, str]) -> None:
    data = (CORPUS / row["path"]).read_bytes()
    items, rejects = _bounded_parse(data)
    reasons = sorted({r.reason for r in rejects} - {"item_no_link"})
    SUMMARY["files"] += 1
    SUMMARY["rejected" if FATAL_FEED_REASONS & set(reasons) else "parsed"] += 1
    for reason in reasons:
        SUMMARY[reason] += 1
    if row["http_header"]:
        return  # feedparser's verdict for these depends on the header: see test_http_path
    _check_expectations(row, data, items, rejects)


@pytest.mark.parametrize(
    "path",
    [
        "xml-attacks/defusedxml/quadratic.xml",
        "xml-attacks/defusedxml/xmlbomb.xml",
        "xml-attacks/payloadsallthethings/billion_laughs.xml",
        "xml-attacks/payloadsallthethings/classic_xxe_etc_passwd.xml",
        "xml-attacks/defusedxml/external_file.xml",
    ],
)
def test_entity_attacks_rejected(path: str) -> None:
    items, rejects = _bounded_parse((CORPUS / path).read_bytes())
    assert not items and [r.reason for r in rejects] == ["feed_entities"]


SANITIZE_ROWS = [r for r in ROWS if r["category"] == "sanitize"]
UNSAFE = re.compile(
    r"<\s*(script|style|iframe|object|embed|applet|meta|link)\b|\bon[a-z]+\s*=|javascript:|vbscript:",
    re.IGNORECASE,
)


@pytest.mark.parametrize("row", SANITIZE_ROWS, ids=[r["path"] for r in SANITIZE_ROWS])
def test_sanitised_text_has_no_markup(row: dict[str, str]) -> None:
    """Entries in sanitize files mostly lack links (so parse_feed rejects them); check their text."""
    import feedparser

    parsed = feedparser.parse(io.BytesIO((CORPUS / row["path"]).read_bytes()), sanitize_html=True)
    for entry in parsed.entries:
        for text in entry_text_fields(entry):
            assert not UNSAFE.search(text), text


HTTP_ROWS = [r for r in ROWS if r["http_header"]]


def _route(row: dict[str, str]) -> Route:
    name, _, value = row["http_header"].partition(":")
    headers = {"Content-Type": "application/octet-stream"}
    raw: list[tuple[str, str]] = []
    if name.strip().lower() == "content-type":
        headers = {}
        raw.append(("Content-Type", value.strip()))
    else:
        raw.append((name.strip(), value.strip()))
        headers = {"Content-Type": "application/xml"}
    return Route((CORPUS / row["path"]).read_bytes(), headers=headers, raw_headers=raw)


@pytest.fixture(scope="module")
def site() -> Iterator[Served]:
    with serve({f"/{i}.xml": _route(row) for i, row in enumerate(HTTP_ROWS)}) as served:
        yield served


@pytest.mark.parametrize("index", range(len(HTTP_ROWS)), ids=[r["path"] for r in HTTP_ROWS])
def test_http_path(site: Served, index: int) -> None:
    row = HTTP_ROWS[index]
    with make_client(
        IngestSettings(connect_timeout_s=1.0, read_timeout_s=2.0), allow_private=True
    ) as client:
        try:
            got = fetch(client, site.url(f"/{index}.xml"), max_bytes=1_000_000)
        except FetchError as exc:  # pragma: no cover - would be a server/fixture bug
            pytest.fail(f"fetch failed: {exc}")
    items, rejects = _bounded_parse(
        got.content, content_type=got.content_type, base_url=got.final_url
    )
    if row["http_header"].lower().startswith("content-type"):
        assert got.content_type == row["http_header"].split(":", 1)[1].strip()
    _check_expectations(row, got.content, items, rejects)


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if SUMMARY["files"]:
        reasons = ", ".join(
            f"{k}={v}"
            for k, v in sorted(SUMMARY.items())
            if k not in {"files", "parsed", "rejected"}
        )
        line = (
            f"hostile feeds: {SUMMARY['files']} files, {SUMMARY['parsed']} parsed, "
            f"{SUMMARY['rejected']} rejected; reasons: {reasons}"
        )
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line("\n" + line)
