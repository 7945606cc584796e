"""The report site and the aligned page: from the demo warehouse, from hostile input, in Chromium.

One demo run (the session's `demo_run`), one hostile ingest and one Chromium session serve
every test here.
"""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline import warehouse
from pipeline.export.statements import load_event
from pipeline.report import build_site
from pipeline.report.site import FILTER_JS, page_name
from pipeline.settings import Settings, load_settings
from tests.export_rows import check_round_trip

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_HINT = "apt-get install chromium chromium-driver (what .ci/run does)"


def _settings(env: dict[str, str], **over: Any) -> Settings:
    return load_settings(warehouse=env["PARALLAX_WAREHOUSE"], **over)


@pytest.fixture(scope="module")
def demo(demo_run):  # type: ignore[no-untyped-def]
    assert demo_run.exit_code == 0, demo_run.output
    settings = _settings(demo_run.env)
    with warehouse.open_warehouse(settings, read_only=True) as con:
        rafah = con.execute(
            "SELECT event_id FROM events WHERE label ILIKE '%rafah%four weeks%' LIMIT 1"
        ).fetchall()[0][0]
    return demo_run.root, settings, rafah


def test_index_ranks_rafah_first_and_reruns_are_byte_identical(demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, settings, rafah = demo
    site = root / "var" / "report"
    html = (site / "index.html").read_text(encoding="utf-8")
    rows = html.split('<tr data-event="')[1:]
    assert rows[0].startswith(rafah)  # 6 outlets x 3 languages: the broadest event
    fresh = tmp_path / "site"
    with warehouse.open_warehouse(settings, read_only=True) as con:
        again = build_site(con, site)
        first = build_site(con, fresh)
    assert again.written == [] and again.removed == [] and again.unchanged == first.events + 1
    assert again.loaded == 0 and first.loaded == first.events  # nothing moved: nothing loaded
    cmp = filecmp.dircmp(site, fresh)
    names = sorted(p.relative_to(site) for p in site.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    for name in names:
        assert (site / name).read_bytes() == (fresh / name).read_bytes(), name
    assert cmp.left_only == cmp.right_only == []


def test_new_article_rewrites_only_its_event_and_the_index(demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pipeline.records import Article, Segment, article_id_for, sha256_text

    root, settings, rafah = demo
    db = tmp_path / "wh.duckdb"
    shutil.copy(settings.warehouse, db)
    site = tmp_path / "site"
    shutil.copytree(root / "var" / "report", site)
    url = "http://127.0.0.1/late/rafah"
    text = "A late report adds that the talks resume on Monday."
    with warehouse.open_warehouse(load_settings(warehouse=str(db))) as con:
        outlet = con.execute(
            "SELECT a.outlet_id FROM event_articles JOIN articles a USING (article_id) "
            "WHERE event_id = ? AND a.lang = 'en' LIMIT 1",
            [rafah],
        ).fetchall()[0][0]
        art = Article(
            article_id_for(url),
            outlet,
            url,
            "Late report",
            datetime(2026, 11, 11, 22, tzinfo=UTC),
            text,
            "page",
            sha256_text(text),
            "en",
            0.99,
            "script",
        )
        warehouse.load_articles(con, [art])
        warehouse.load_segments(con, [Segment(art.article_id, 0, 0, text, "en")])
        con.execute("INSERT INTO event_articles VALUES (?, ?, ?)", [rafah, art.article_id, 0.8])
        result = build_site(con, site)
    assert sorted(p.name for p in result.written) == sorted(["index.html", page_name(rafah)])
    assert result.removed == [] and result.loaded == 1
    page = (site / "events" / page_name(rafah)).read_text(encoding="utf-8")
    assert "talks resume on Monday" in page
    fresh = tmp_path / "fresh"
    with warehouse.open_warehouse(load_settings(warehouse=str(db)), read_only=True) as con:
        build_site(con, fresh)
    assert (fresh / "index.html").read_bytes() == (site / "index.html").read_bytes()


def test_a_new_translation_or_outlet_name_reloads_only_its_events(demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The digest sees English that arrives later and an outlet renamed in the settings; the
    incremental site then equals a site built from scratch, byte for byte."""
    root, settings, rafah = demo
    db = tmp_path / "wh.duckdb"
    shutil.copy(settings.warehouse, db)
    site = tmp_path / "site"
    shutil.copytree(root / "var" / "report", site)
    with warehouse.open_warehouse(load_settings(warehouse=str(db))) as con:
        article, seg_no, model = con.execute(  # the row the page shows: the latest one
            "SELECT t.article_id, t.seg_no, arg_max(t.model_id, t.created_at) FROM translations t "
            "JOIN event_articles ea USING (article_id) JOIN segments s USING (article_id, seg_no) "
            "WHERE ea.event_id = ? AND s.lang IN ('he', 'ar') GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 1",
            [rafah],
        ).fetchall()[0]
        con.execute(
            "UPDATE translations SET text_en = 'A corrected English sentence.' "
            "WHERE article_id = ? AND seg_no = ? AND model_id = ?",
            [article, seg_no, model],
        )
        result = build_site(con, site)
        assert result.loaded == 1 and page_name(rafah) in {p.name for p in result.written}
        page = (site / "events" / page_name(rafah)).read_text(encoding="utf-8")
        assert "A corrected English sentence." in page
        outlet, events = con.execute(
            "SELECT a.outlet_id, count(DISTINCT ea.event_id) FROM articles a "
            "JOIN event_articles ea USING (article_id) GROUP BY 1 ORDER BY 2, 1 LIMIT 1"
        ).fetchall()[0]
        con.execute("UPDATE outlets SET name = 'Renamed Desk' WHERE outlet_id = ?", [outlet])
        result = build_site(con, site)
        assert result.loaded == events
        fresh = build_site(con, tmp_path / "fresh")
    for name in ["index.html", *(f"events/{p.name}" for p in (site / "events").glob("*.html"))]:
        assert (site / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name
    assert "Renamed Desk" in (site / "index.html").read_text(encoding="utf-8")
    assert fresh.loaded == fresh.events


def test_every_format_has_the_same_rows_on_the_demo(demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, settings, rafah = demo
    with warehouse.open_warehouse(settings, read_only=True) as con:
        ev = load_event(con, rafah)
    assert len(ev.outlets) == 6 and len(ev.rows()) > 20
    assert any(st.unique_to for st in ev.statements)
    assert any(len([c for c in st.cells if c]) > 1 for st in ev.statements)
    check_round_trip(ev, tmp_path)


# ---------------------------------------------------------------- hostile input

EVIL_TITLE = 'Deal </title><script>alert("title")</script> \u202eevil\u202c'
EVIL_OUTLET = 'Evil <img src=x onerror=alert("outlet")> News \u202e'
EVIL_TEXT = [
    'Officials wrote <script>alert("text")</script> in a statement about the crossing talks.',
    'A caption read <img src=x onerror=alert("img")> beside the map of the border crossing.',
    "The mayor said \u202eeht gnissorc sepo\u202c on Sunday, according to the local council.",
    'Readers were told to click <a href="javascript:alert(1)">here</a> for the full text.',
]


def _hostile_page() -> bytes:
    import html

    paras = "".join(f"<p>{html.escape(t)}</p>" for t in EVIL_TEXT * 3)
    return (
        f"<html><head><title>{html.escape(EVIL_TITLE)}</title></head><body><article>"
        f"<h1>{html.escape(EVIL_TITLE)}</h1>{paras}</article></body></html>"
    ).encode()


def _hostile_feed(base: str) -> bytes:
    import html

    items = "".join(
        f"<item><title>{html.escape(EVIL_TITLE)}</title><link>{link}</link>"
        f"<description>{html.escape(EVIL_TEXT[1])}</description>"
        "<pubDate>Wed, 11 Nov 2026 10:00:00 GMT</pubDate></item>"
        for link in (base + "/a1", "javascript:alert(1)")
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Evil</title>'
        f"<link>{base}/</link>{items}</channel></rss>"
    ).encode()


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A hostile feed and page through ingest, segment, align, then export and the report."""
    from pipeline.export.formats import write_export
    from pipeline.records import Outlet
    from pipeline.run import step_align, step_ingest, step_load_articles, step_segment
    from tests.fixtures.ingest.server import Route, serve

    root = tmp_path_factory.mktemp("hostile")
    settings = load_settings(
        warehouse=str(root / "wh.duckdb"),
        runtime_dir=root / "var",
        staging_dir=root / "var" / "staging",
        models_dir=root / "no-models",
    )
    settings = replace(settings, align=replace(settings.align, embedder="none"))
    html_type = {"Content-Type": "text/html; charset=utf-8"}
    with serve({"/a1": Route(_hostile_page(), headers=html_type)}) as served:
        served.routes["/feed.xml"] = Route(  # the feed names the server's own address
            _hostile_feed(served.base.rstrip("/")),
            headers={"Content-Type": "application/rss+xml"},
        )
        outlet = Outlet("evil", EVIL_OUTLET, "en", served.url("/feed.xml"), allow_private=True)
        articles, result = step_ingest([outlet], settings)
    with warehouse.open_warehouse(settings) as con:
        step_load_articles(con, [outlet], articles, result)
        step_segment(con, settings)
        step_align(con, settings)
        event_id = con.execute("SELECT event_id FROM events").fetchall()[0][0]
        # ingest drops bidi controls from article text; outlet names come from config as-is
        stored = con.execute(
            "SELECT a.title || ' ' || a.text || ' ' || o.name FROM articles a JOIN outlets o "
            "USING (outlet_id)"
        ).fetchall()[0][0]
        site = build_site(con, root / "site")
        ev = load_event(con, event_id)
    for fmt in ("md", "csv"):
        write_export(ev, fmt, root / f"event.{fmt}")
    return root, site, event_id, stored


def test_hostile_text_arrives_as_text_and_nothing_is_live(hostile_site) -> None:  # type: ignore[no-untyped-def]
    import lxml.html

    root, site, event_id, stored = hostile_site
    # the hostile strings really reached the warehouse (else this test proves nothing)
    for needle in ("<script>", "onerror=", "javascript:", "\u202e", "</title>"):
        assert needle in stored, needle
    index = (root / "site" / "index.html").read_text(encoding="utf-8")
    page = (root / "site" / "events" / page_name(event_id)).read_text(encoding="utf-8")
    for name, html in (("index", index), ("event", page)):
        assert "\u202e" not in html and "[U+202E]" in html, name
        doc = lxml.html.fromstring(html)
        scripts = doc.xpath("//script")
        assert [s.text for s in scripts] == ([FILTER_JS] if name == "index" else []), name
        assert doc.xpath("//img | //iframe | //object | //embed") == [], name
        for el in doc.iter():
            for attr, value in el.attrib.items():
                assert not attr.lower().startswith("on"), (name, el.tag, attr)
                if attr in ("href", "src", "action"):
                    assert value.startswith(("http://127.0.0.1", "#", "events/", "../")), value
        body = doc.body.text_content()
        assert "<script>alert(" in body and "onerror=alert(" in body, name
    title = lxml.html.fromstring(page).findtext(".//title")
    assert title.startswith("Deal </title><script>") and title.endswith("— Parallax")
    assert "javascript:alert" not in page.split("<body>")[0]  # not in head
    md = (root / "event.md").read_text(encoding="utf-8")
    assert "<script>" not in md and "&lt;script&gt;" in md and "\u202e" not in md


# ---------------------------------------------------------------- in Chromium


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"Chromium or chromedriver missing: {INSTALL_HINT}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1366,900",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _visible_rows(driver: Any) -> list[str]:
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll('#events tbody tr')]"
            ".filter(r => !r.hidden && r.offsetParent !== null).map(r => r.dataset.event)"
        )
    )


def test_report_and_rafah_page_in_chromium(browser, demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    root, settings, rafah = demo
    site = root / "var" / "report"
    d = browser
    d.get((site / "index.html").as_uri())
    everything = _visible_rows(d)
    assert everything[0] == rafah and len(everything) >= 5
    d.save_screenshot(str(tmp_path / "index.png"))
    form = d.find_element(By.ID, "filters")
    form.find_element(By.NAME, "one").click()  # covered by one language only
    one_lang = _visible_rows(d)
    assert rafah not in one_lang and 0 < len(one_lang) < len(everything)
    assert d.find_element(By.ID, "shown").text == str(len(one_lang))
    form.find_element(By.NAME, "one").click()
    form.find_element(By.NAME, "div").click()  # has divergences
    with_div = _visible_rows(d)
    assert rafah in with_div and len(with_div) < len(everything)
    form.find_element(By.NAME, "div").click()
    Select(form.find_element(By.NAME, "lang")).select_by_value("ar")
    arabic = _visible_rows(d)
    assert rafah in arabic and len(arabic) < len(everything)
    Select(form.find_element(By.NAME, "lang")).select_by_value("")
    d.execute_script(
        "const f = document.getElementById('filters'); f.to.value = '2026-11-10';"
        "f.dispatchEvent(new Event('change'));"
    )
    early = _visible_rows(d)
    assert rafah not in early and len(early) < len(everything)  # Rafah: 11 November
    form.find_element(By.CSS_SELECTOR, "button[type=reset]").click()  # applied after the reset
    WebDriverWait(d, 10).until(lambda drv: _visible_rows(drv) == everything)

    d.find_element(By.CSS_SELECTOR, f'tr[data-event="{rafah}"] td.label a').click()
    assert d.current_url.endswith(f"events/{page_name(rafah)}")
    d.save_screenshot(str(tmp_path / "rafah.png"))
    info = d.execute_script(
        """
        const rows = [...document.querySelectorAll('tbody tr.st')];
        const rtl = [...document.querySelectorAll('p.orig[lang="he"], p.orig[lang="ar"]')];
        const ltr = [...document.querySelectorAll('p.orig[lang="en"]')];
        const marks = [...document.querySelectorAll('p.orig mark.div[data-kind="duration"]')];
        const differ = [...document.querySelectorAll('#differ mark.div')];
        return {
          rows: rows.length,
          cellsPerRow: rows.map(r => r.querySelectorAll('td.cell').length),
          rtl: rtl.map(p => getComputedStyle(p).direction),
          ltr: ltr.map(p => getComputedStyle(p).direction),
          marks: marks.map(m => [m.textContent, m.closest('td').dataset.outlet]),
          firstScreen: differ.filter(m => m.getBoundingClientRect().bottom < innerHeight)
            .map(m => m.textContent),
          differ: [...document.querySelectorAll('#differ li')].map(li => li.textContent),
          markBg: marks.length ? getComputedStyle(marks[0]).backgroundColor : '',
        };
        """
    )
    assert info["rows"] > 5 and set(info["cellsPerRow"]) == {6}
    assert info["rtl"] and set(info["rtl"]) == {"rtl"}
    assert info["ltr"] and set(info["ltr"]) == {"ltr"}
    outlets_marked = {outlet for _, outlet in info["marks"]}
    assert len(outlets_marked) >= 2  # the divergence highlighted on both sides
    texts = " ".join(t for t, _ in info["marks"])
    assert "four months" in texts and ("שבועות" in texts or "أسابيع" in texts)
    # both sides of the dispute in the first screenful, each a link to its row
    assert {"4 weeks", "4 months"} <= set(info["firstScreen"]), info
    for value in ("4 weeks", "4 months"):
        d.find_element(By.XPATH, f"//section[@id='differ']//a[mark='{value}']").click()
        shown = d.execute_script(
            """
            const row = document.querySelector(location.hash);
            const box = document.querySelector('.gridwrap').getBoundingClientRect();
            return [...row.querySelectorAll('p.orig mark.div')].filter(m => {
              const r = m.getBoundingClientRect();
              return r.top >= Math.max(0, box.top) && r.bottom <= Math.min(innerHeight, box.bottom);
            }).map(m => m.title.split(' here')[0]);
            """
        )
        assert f"duration: {value}" in shown, (value, shown)
    assert any("4 weeks" in li and "4 months" in li for li in info["differ"])
    assert info["markBg"] not in ("", "rgba(0, 0, 0, 0)")


def test_blindspot_filter_in_chromium(browser, demo) -> None:  # type: ignore[no-untyped-def]
    """ "Blindspots only" shows exactly the events the `blindspots` view lists for the chosen
    floor of covering outlets and kind of silence, each naming who covered it and who was
    silent; Rafah (every language, every outlet group) is never one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from pipeline.blindspots import fetch_blindspots

    root, settings, rafah = demo
    with warehouse.open_warehouse(settings, read_only=True) as con:
        expected = {
            (n, kind): {r["event_id"] for r in fetch_blindspots(con, min_outlets=n, kinds=kinds)}
            for n in (1, 2)
            for kind, kinds in (("", ("language", "group")), ("group", ("group",)))
        }
        spot = fetch_blindspots(con, min_outlets=2)[0]
    assert expected[(2, "")] and expected[(1, "")] > expected[(2, "")]
    assert rafah not in expected[(1, "")]
    d = browser
    d.get((root / "var" / "report" / "index.html").as_uri())
    everything = _visible_rows(d)
    form = d.find_element(By.ID, "filters")
    form.find_element(By.NAME, "blind").click()
    shown = _visible_rows(d)
    assert set(shown) == expected[(2, "")] and len(shown) < len(everything)
    assert d.find_element(By.ID, "shown").text == str(len(shown))
    # a blindspot names the covering languages / groups and the silent ones with their outlets
    cell = d.find_element(
        By.CSS_SELECTOR,
        f'tr[data-event="{spot["event_id"]}"] td.blind div[data-kind="{spot["kind"]}"]',
    )
    assert f"covered by {', '.join(spot['covered_by'])}" in cell.text
    assert spot["silent"] in [b.text for b in cell.find_elements(By.CSS_SELECTOR, "b.silent")]
    Select(form.find_element(By.NAME, "bkind")).select_by_value("group")
    assert set(_visible_rows(d)) == expected[(2, "group")]
    Select(form.find_element(By.NAME, "bkind")).select_by_value("")
    floor = form.find_element(By.NAME, "minout")
    floor.clear()
    floor.send_keys("1")
    assert set(_visible_rows(d)) == expected[(1, "")]
    form.find_element(By.CSS_SELECTOR, "button[type=reset]").click()
    WebDriverWait(d, 10).until(lambda drv: _visible_rows(drv) == everything)


def test_wide_event_scrolls_with_context_in_view(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """12 outlets: nothing cut off, the grid scrolls sideways and the statement column stays."""
    from pipeline.export.formats import render_html
    from tests.synthetic_warehouse import fill

    settings = load_settings(warehouse=str(tmp_path / "wh.duckdb"))
    pages = {}
    with warehouse.open_warehouse(settings) as con:
        syn = fill(con, 40, widest_outlets=12)
        two = con.execute(
            "SELECT event_id FROM events WHERE len(outlets) = 2 ORDER BY event_id LIMIT 1"
        ).fetchall()[0][0]
        for n, event_id in ((12, syn.widest), (2, two)):
            pages[n] = tmp_path / f"outlets{n}.html"
            pages[n].write_text(render_html(load_event(con, event_id)), encoding="utf-8")
    d = browser
    for n, page in pages.items():
        d.get(page.as_uri())
        d.save_screenshot(str(tmp_path / f"outlets{n}.png"))
        state = d.execute_script(
            """
            const wrap = document.querySelector('.gridwrap');
            const clipped = [...document.querySelectorAll('.sent p, th.outlet')]
              .filter(p => p.scrollWidth > p.clientWidth + 1).length;
            const before = wrap.scrollWidth > wrap.clientWidth;
            wrap.scrollLeft = wrap.scrollWidth;
            const ctx = document.querySelector('tbody th.ctx').getBoundingClientRect();
            const last = document.querySelector('thead th.outlet:last-child').getBoundingClientRect();
            const box = wrap.getBoundingClientRect();
            return {clipped, scrolls: before, ctxLeft: ctx.left - box.left,
                    lastRight: box.right - last.right,
                    cols: document.querySelectorAll('thead th.outlet').length};
            """
        )
        assert state["cols"] == n and state["clipped"] == 0, state
        if n == 12:
            assert state["scrolls"] and abs(state["ctxLeft"]) < 2, state  # context kept in view
            assert state["lastRight"] >= -1, state  # the last column reachable
            d.save_screenshot(str(tmp_path / "outlets12-scrolled.png"))
        else:
            assert not state["scrolls"], state  # two outlets fit the window


def test_report_command_filters_by_language_and_date(demo, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from pipeline.cli import app

    _, settings, rafah = demo
    monkeypatch.setenv("PARALLAX_WAREHOUSE", settings.warehouse)
    counts = {}
    for name, extra in (("all", []), ("ar", ["--lang", "ar"]), ("late", ["--since", "2026-11-15"])):
        res = CliRunner().invoke(app, ["report", "--out", str(tmp_path / name), *extra])
        assert res.exit_code == 0, res.output
        counts[name] = int(res.stdout.split("events=")[1].split()[0])
        index = (tmp_path / name / "index.html").read_text(encoding="utf-8")
        assert (rafah in index) == (name != "late")
    assert counts["all"] > counts["ar"] > 0 and counts["all"] > counts["late"] > 0
