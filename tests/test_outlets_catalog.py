"""The outlet catalogue, `parallax outlets catalog|add|check`, and feed discovery from homepages
served on 127.0.0.1 (the catalogue's own URLs are never fetched)."""

from __future__ import annotations

import json
import threading
import tomllib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.catalog import GROUPS, append_outlets, load_catalog
from pipeline.catalog.discover import feed_links
from pipeline.cli import app
from pipeline.ingest.outlets import load_outlets
from pipeline.workspace import catalog_path

runner = CliRunner()

HE = [
    "הממשלה אישרה הלילה את תקציב המדינה לשנה הבאה אחרי דיון ארוך",
    "רעידת אדמה הורגשה בצפון הארץ ותושבים יצאו מבתיהם בבהלה",
    "שר האוצר הודיע על הקלות במס לזוגות צעירים ולמשפחות",
]
AR = [
    "وافقت الحكومة الليلة على ميزانية الدولة للعام المقبل بعد نقاش طويل",
    "شعر السكان بهزة أرضية في الشمال وخرج كثيرون من منازلهم",
    "أعلن وزير المالية عن تخفيضات ضريبية للأزواج الشباب والعائلات",
]


def rss(title: str, texts: list[str], age: timedelta = timedelta(hours=2), lang: str = "") -> bytes:
    now = datetime.now(UTC)
    items = "".join(
        f"<item><title>{t}</title><link>http://127.0.0.1/a/{i}</link>"
        f"<pubDate>{format_datetime(now - age - timedelta(hours=i))}</pubDate>"
        f"<description>{t}</description></item>"
        for i, t in enumerate(texts)
    )
    language = f"<language>{lang}</language>" if lang else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>http://127.0.0.1/</link><description>d</description>{language}{items}"
        "</channel></rss>"
    ).encode()


def atom(title: str, texts: list[str]) -> bytes:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = "".join(
        f'<entry><title>{t}</title><id>urn:{i}</id><link href="http://127.0.0.1/b/{i}"/>'
        f"<updated>{now}</updated><summary>{t}</summary></entry>"
        for i, t in enumerate(texts)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{title}</title><id>urn:x</id><updated>{now}</updated>{entries}</feed>"
    ).encode()


@contextmanager
def serve(routes: dict[str, tuple[str, bytes]]) -> Iterator[str]:
    """Serve ``path -> (content type, body)`` on 127.0.0.1; anything else is a 404."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path not in routes:
                self.send_error(404)
                return
            ctype, body = routes[self.path]
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_catalogue_is_big_balanced_and_sourced() -> None:
    entries = load_catalog()
    assert len(entries) >= 36
    langs = Counter(e.lang for e in entries)
    assert all(langs[lang] >= 12 for lang in ("he", "ar", "en")), langs
    assert set(GROUPS) <= {e.group for e in entries}
    assert len({e.id for e in entries}) == len(entries)
    assert len({e.feed_url for e in entries}) == len(entries)
    for e in entries:
        assert e.evidence and e.seen and e.country and e.homepage.startswith("https://"), e.id
        assert e.feed_url.startswith(("https://", "http://")), e.id
    # every source key cited is defined in the file's header
    header = catalog_path().read_text(encoding="utf-8").split("[[outlet]]")[0]
    cited = {ev.split()[0] for e in entries for ev in e.evidence if ev.startswith("S")}
    assert all(f"[{key}]" in header for key in cited), cited


def test_every_catalogue_entry_is_a_valid_outlet(tmp_path: Path) -> None:
    path = tmp_path / "outlets.toml"
    entries = load_catalog()
    append_outlets(path, [(e.to_outlet(), f"seen {e.seen}") for e in entries])
    loaded = {o.outlet_id: o for o in load_outlets(path)}
    assert set(loaded) == {e.id for e in entries}
    assert loaded["ynet"].group == "israeli" and loaded["arab48"].lang == "ar"


def test_catalog_command_json_and_filter() -> None:
    res = runner.invoke(app, ["outlets", "catalog", "--lang", "ar", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) >= 12 and {r["lang"] for r in rows} == {"ar"}
    assert {"id", "name", "lang", "country", "group", "homepage", "feed_url"} <= set(rows[0])
    table = runner.invoke(app, ["outlets", "catalog", "--group", "palestinian"])
    assert table.exit_code == 0 and "arab48" in table.stdout


def test_feed_links_from_html() -> None:
    html = (
        "<html><head><title> Site  One </title>"
        '<link rel="alternate" type="application/rss+xml" href="/rss.xml">'
        '<link rel="alternate stylesheet" type="text/css" href="/x.css">'
        '<link rel="Alternate" type="application/atom+xml; charset=utf-8" href="https://o.org/a">'
        "</head></html>"
    )
    links, title = feed_links(html, "http://127.0.0.1:1/home/")
    assert links == ["http://127.0.0.1:1/rss.xml", "https://o.org/a"] and title == "Site One"


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("PARALLAX_OUTLETS", "PARALLAX_CONFIG", "PARALLAX_WAREHOUSE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PARALLAX_HOME", str(tmp_path / "ws"))
    assert runner.invoke(app, ["init", str(tmp_path / "ws")]).exit_code == 0
    return tmp_path / "ws"


def _configured(ws: Path) -> dict[str, dict[str, object]]:
    with (ws / "outlets.toml").open("rb") as fh:
        return {t["id"]: t for t in tomllib.load(fh).get("outlet", [])}


def test_add_from_catalogue_and_from_homepages(workspace: Path) -> None:
    he_home = b'<html><head><title>Kol</title><link rel="alternate" type="application/rss+xml" href="/news/feed.rss"></head><body>hi</body></html>'
    with (
        serve(
            {
                "/": ("text/html", he_home),
                "/news/feed.rss": ("application/rss+xml", rss("Kol Hadashot", HE)),
            }
        ) as he_site,
        serve(
            {
                "/": ("text/html", b"<html><body>no links</body></html>"),
                "/feed": ("application/atom+xml", atom("Al-Akhbar", AR)),
            }
        ) as ar_site,
        serve({"/": ("text/html", b"<html><body>nothing</body></html>")}) as bare,
    ):
        res = runner.invoke(
            app, ["outlets", "add", "ynet", f"{he_site}/", "--group", "israeli", "--allow-private"]
        )
        assert res.exit_code == 0, res.output
        res = runner.invoke(
            app, ["outlets", "add", f"{ar_site}/", "--id", "akhbar", "--allow-private"]
        )
        assert res.exit_code == 0, res.output
        fail = runner.invoke(app, ["outlets", "add", f"{bare}/", "--allow-private"])
        guarded = runner.invoke(app, ["outlets", "add", f"{he_site}/"])  # a public outlet may not
    conf = _configured(workspace)
    assert conf["ynet"]["feed_url"] == "https://www.ynet.co.il/Integration/StoryRss2.xml"
    he = conf["127-0-0-1"]
    assert he["feed_url"] == f"{he_site}/news/feed.rss" and he["lang"] == "he"
    assert he["name"] == "Kol Hadashot" and he["group"] == "israeli"
    assert conf["akhbar"]["feed_url"] == f"{ar_site}/feed" and conf["akhbar"]["lang"] == "ar"
    assert "common path /feed" in (workspace / "outlets.toml").read_text(encoding="utf-8")
    assert fail.exit_code == 1 and "no feed found" in fail.output and "Traceback" not in fail.output
    assert guarded.exit_code == 1 and "non-public address" in guarded.output
    assert he["allow_private"] is True and "allow_private" not in conf["ynet"]
    again = runner.invoke(app, ["outlets", "add", "ynet"])
    assert again.exit_code == 0 and "already there: ynet" in again.stdout
    unknown = runner.invoke(app, ["outlets", "add", "no-such-outlet"])
    assert unknown.exit_code == 1 and "parallax outlets catalog" in unknown.output


def test_check_reports_status_items_age_and_language(workspace: Path) -> None:
    routes = {
        "/good.xml": ("application/rss+xml", rss("Good", HE)),
        "/mislabelled.xml": ("application/rss+xml", rss("Mislabelled", AR)),
        "/stale.xml": ("application/rss+xml", rss("Stale", HE, age=timedelta(days=30))),
        "/page.html": ("text/html", b"<html><body><p>not a feed</p></body></html>"),
    }
    with serve(routes) as site:
        outlets = "".join(
            f'[[outlet]]\nid = "{oid}"\nname = "{oid}"\nlang = "he"\nfeed_url = "{site}{path}"\n'
            f'homepage = "{site}/"\nallow_private = true\n\n'
            for oid, path in [
                ("good", "/good.xml"),
                ("mislabelled", "/mislabelled.xml"),
                ("stale", "/stale.xml"),
                ("gone", "/gone.xml"),
                ("page", "/page.html"),
            ]
        )
        (workspace / "outlets.toml").write_text(outlets, encoding="utf-8")
        res = runner.invoke(app, ["outlets", "check", "--format", "json"])
        table = runner.invoke(app, ["outlets", "check"])
    assert res.exit_code == 1  # one feed is gone
    checks = {c["outlet_id"]: c for c in json.loads(res.stdout)}
    good = checks["good"]
    assert good["ok"] and good["status"] == "200" and good["items"] == 3
    assert good["detected_lang"] == "he" and 1.5 < good["newest_age_h"] < 3 and good["fix"] == ""
    assert checks["mislabelled"]["detected_lang"] == "ar"
    assert 'set lang = "ar"' in checks["mislabelled"]["fix"]
    assert checks["stale"]["newest_age_h"] > 24 * 29 and "30 days old" in checks["stale"]["fix"]
    gone = checks["gone"]
    assert not gone["ok"] and gone["status"] == "HTTP 404" and "parallax outlets add" in gone["fix"]
    assert checks["page"]["status"] == "not_a_feed"
    assert table.exit_code == 1 and "good" in table.stdout
