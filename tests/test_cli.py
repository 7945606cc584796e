"""The `parallax` command as a user runs it: sql, export, eval events --feeds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline import warehouse
from pipeline.cli import app
from pipeline.settings import Settings
from tests.test_export import _fill

runner = CliRunner()


@pytest.fixture()
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PARALLAX_WAREHOUSE", settings.warehouse)
    monkeypatch.setenv("PARALLAX_RUNTIME_DIR", str(settings.runtime_dir))
    monkeypatch.setenv("PARALLAX_MODELS_DIR", str(settings.models_dir))
    return settings


def test_sql_prints_a_table_and_reports_bad_sql(env: Settings) -> None:
    with warehouse.open_warehouse(env) as con:
        _fill(con)
    res = runner.invoke(
        app, ["sql", "select lang, count(*) as n from articles group by 1 order by 1"]
    )
    assert res.exit_code == 0, res.output
    assert re.search(r"en\s*│\s*1", res.stdout) and re.search(r"he\s*│\s*1", res.stdout)
    bad = runner.invoke(app, ["sql", "select * from no_such_table"])
    assert bad.exit_code == 1


def test_sql_without_warehouse_says_how_to_make_one(env: Settings) -> None:
    res = runner.invoke(app, ["sql", "select 1"])
    assert res.exit_code == 1
    assert "parallax demo" in res.output


def test_export_command_writes_the_file(env: Settings, tmp_path: Path) -> None:
    with warehouse.open_warehouse(env) as con:
        event_id = _fill(con)
    target = tmp_path / "out.md"
    res = runner.invoke(
        app, ["export", "--event", event_id, "--format", "md", "--out", str(target)]
    )
    assert res.exit_code == 0, res.output
    assert "HaBoker (he)" in target.read_text(encoding="utf-8")
    assert runner.invoke(app, ["export", "--event", "missing"]).exit_code == 1
    assert runner.invoke(app, ["export", "--event", event_id, "--format", "docx"]).exit_code == 2


RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>
<title>{title}</title><link>http://127.0.0.1/{stem}/</link><description>x</description>
{items}
</channel></rss>"""
RSS_ITEM = """<item><title>{title}</title><link>{link}</link><pubDate>{date}</pubDate>
<description>&lt;p&gt;{summary}&lt;/p&gt;</description></item>"""
ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>{title}</title><id>urn:{stem}</id>
<updated>2026-11-12T10:00:00Z</updated>{items}</feed>"""
ATOM_ENTRY = """<entry><title>{title}</title><id>{link}</id><link rel="alternate" href="{link}"/>
<published>{date}</published><updated>{date}</updated>
<content type="html">&lt;p&gt;{summary}&lt;/p&gt;</content></entry>"""

# Two events (a Tiberias earthquake, a Cairo donor conference) told in three languages,
# plus one unrelated story; dates a few days apart.
STORIES = {
    "he-news": (
        "rss",
        [
            (
                "quake",
                "רעידת אדמה בעוצמה 4.8 הורגשה בצפון",
                "רעידת אדמה בעוצמה 4.8 הורגשה הלילה בטבריה, בצפת ובחיפה. המוקד היה צפונית לכנרת. לא היו נפגעים, אך נרשמו סדקים בבניינים ישנים בטבריה.",
                "Mon, 09 Nov 2026 04:00:00 +0000",
            ),
            (
                "cairo",
                "מצרים מארחת ועידה לשיקום עזה",
                "מצרים אירחה בקהיר ועידה בינלאומית לשיקום רצועת עזה. המדינות התורמות התחייבו ל-5.2 מיליארד דולר. ישראל לא הוזמנה לוועידה.",
                "Sat, 14 Nov 2026 12:00:00 +0000",
            ),
        ],
    ),
    "ar-news": (
        "atom",
        [
            (
                "quake",
                "زلزال بقوة 4.8 درجات يضرب شمال بحيرة طبريا",
                "ضرب زلزال بقوة 4.8 درجات فجر اليوم منطقة شمال بحيرة طبريا، وشعر به سكان جنوب لبنان وجنوب سوريا. ولم ترد أنباء عن إصابات.",
                "2026-11-09T04:30:00Z",
            ),
            (
                "cairo",
                "القاهرة تستضيف مؤتمر إعادة إعمار غزة",
                "استضافت القاهرة مؤتمرا دوليا لإعادة إعمار قطاع غزة بمشاركة دول الخليج والاتحاد الأوروبي والأمم المتحدة، وتعهد المانحون بتقديم 5.2 مليار دولار.",
                "2026-11-14T13:00:00Z",
            ),
            (
                "books",
                "افتتاح معرض بيروت الدولي للكتاب",
                "افتتح في بيروت معرض الكتاب الدولي بمشاركة أكثر من مئتي دار نشر عربية وأجنبية، ويستمر المعرض عشرة أيام.",
                "2026-11-12T09:00:00Z",
            ),
        ],
    ),
    "en-news": (
        "rss",
        [
            (
                "quake",
                "Magnitude 4.8 quake rattles northern Israel and Lebanon",
                "A magnitude 4.8 earthquake struck north of the Sea of Galilee before dawn, shaking Tiberias, Safed and southern Lebanon. No injuries were reported.",
                "Mon, 09 Nov 2026 05:00:00 +0000",
            ),
            (
                "cairo",
                "Donors pledge $5.2 billion for Gaza at Cairo conference",
                "Egypt hosted an international conference on rebuilding Gaza in Cairo, where Gulf states, the EU and the UN pledged $5.2 billion. Israel was not invited.",
                "Sat, 14 Nov 2026 14:00:00 +0000",
            ),
        ],
    ),
}


def _write_feeds(folder: Path) -> Path:
    folder.mkdir()
    gold = ["url,event"]
    for stem, (kind, stories) in STORIES.items():
        items = []
        for slug, title, summary, date in stories:
            link = f"http://127.0.0.1/{stem}/{slug}.html"
            # the gold names another host, as the bundled sample's does (served on any port):
            # articles are matched by path, and the per-pair diagnostics must find them too
            gold.append(f"http://127.0.0.1:8765/{stem}/{slug}.html,{slug}")
            tpl = RSS_ITEM if kind == "rss" else ATOM_ENTRY
            items.append(tpl.format(title=title, link=link, summary=summary, date=date))
        tpl = RSS if kind == "rss" else ATOM
        (folder / f"{stem}.xml").write_text(
            tpl.format(title=stem, stem=stem, items="\n".join(items)), encoding="utf-8"
        )
    gold_path = folder.parent / "gold.csv"
    gold_path.write_text("\n".join(gold) + "\n", encoding="utf-8")
    return gold_path


def test_eval_events_on_a_folder_of_feeds(
    env: Settings, tmp_path: Path, tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARALLAX_MODELS_DIR", str(tiny_models_dir))
    gold = _write_feeds(tmp_path / "feeds")
    res = runner.invoke(
        app, ["eval", "events", "--gold", str(gold), "--feeds", str(tmp_path / "feeds")]
    )
    assert res.exit_code == 0, res.output
    last = res.stdout.strip().splitlines()[-1]
    m = re.fullmatch(
        r"pairwise_f1=([\d.]+) bcubed_f1=([\d.]+) pairwise_p=([\d.]+) bcubed_p=([\d.]+) "
        r"articles=(\d+) events=(\d+)",
        last,
    )
    assert m, last
    print("\n" + last)
    assert int(m.group(5)) == 7
    assert float(m.group(1)) >= 0.8 and float(m.group(2)) >= 0.8
    assert float(m.group(3)) >= 0.8 and float(m.group(4)) >= 0.8
    # diagnostics: a row per language pair present, and the errors listed with their scores
    assert "per language pair" in res.stdout
    assert re.search(r"^\S*\s*(ar-en|en-he|ar-he|en-en)\b", res.stdout, re.M), res.stdout
    assert not Path(env.warehouse).exists()  # scored in a scratch warehouse, not the user's
