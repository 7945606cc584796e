"""Turn the locally saved texts of the real-news event dev set into feeds for
`parallax eval events --feeds`, one folder per split, with its gold file.

    python devsets/real_events/build_feeds.py [--texts DIR] [--out DIR]
    parallax eval events --feeds devsets/real_events/feeds/tune --gold devsets/real_events/feeds/tune/gold.csv

`manifest.csv` (committed) lists every article: URL, outlet, language, publication time and its
basis, gold event, split, and where it was found. The texts are other people's work and stay out
of the repository: `texts/<id>.txt` (git-ignored), first line the headline, then the text as it
was read. An article whose text is missing is skipped and counted, so a partial copy still runs.
Each outlet becomes one RSS file (`<outlet>.xml`), each article one item with its headline, link,
publication time and text.
"""

from __future__ import annotations

import argparse
import csv
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>{outlet}</title><link>https://{outlet}/</link>
<description>{outlet} (event dev set)</description>
{items}
</channel></rss>
"""
ITEM = """<item><title>{title}</title><link>{link}</link><guid>{link}</guid>
<pubDate>{date}</pubDate><description>{text}</description></item>"""


def build(manifest: Path, texts: Path, out: Path) -> dict[str, int]:
    """Write `out/<split>/<outlet>.xml` and `out/<split>/gold.csv`; returns counts."""
    with manifest.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    counts = {"articles": 0, "missing_text": 0}
    by_split: dict[str, dict[str, list[str]]] = {}
    gold: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        path = texts / f"{row['id']}.txt"
        if not path.is_file():
            counts["missing_text"] += 1
            continue
        title, _, text = path.read_text(encoding="utf-8").partition("\n")
        when = datetime.fromisoformat(row["published_at"].replace("Z", "+00:00"))
        item = ITEM.format(
            title=escape(title.strip()),
            link=escape(row["url"]),
            date=format_datetime(when),
            text=escape(text.strip()),
        )
        by_split.setdefault(row["split"], {}).setdefault(row["outlet"], []).append(item)
        gold.setdefault(row["split"], []).append((row["url"], row["event"]))
        counts["articles"] += 1
    for split, outlets in by_split.items():
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.xml"):
            old.unlink()
        for outlet, items in outlets.items():
            (folder / f"{outlet}.xml").write_text(
                RSS.format(outlet=escape(outlet), items="\n".join(items)), encoding="utf-8"
            )
        with (folder / "gold.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["url", "event"])
            writer.writerows(gold[split])
        counts[f"{split}_articles"] = len(gold[split])
        counts[f"{split}_outlets"] = len(outlets)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=HERE / "manifest.csv")
    parser.add_argument("--texts", type=Path, default=HERE / "texts")
    parser.add_argument("--out", type=Path, default=HERE / "feeds")
    args = parser.parse_args()
    counts = build(args.manifest, args.texts, args.out)
    print(" ".join(f"{k}={v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
