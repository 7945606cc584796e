"""Reading gold files for `parallax eval events`."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.eval.events import match_gold, read_gold


def test_gold_with_unquoted_comma_url_is_refused(tmp_path: Path) -> None:
    gold = tmp_path / "gold.csv"
    gold.write_text("url,event\nhttps://www.ynet.co.il/articles/0,7340,L-1,00.html,quake\n")
    with pytest.raises(ValueError, match="quote URLs"):
        read_gold(gold)
    gold.write_text('url,event\n"https://www.ynet.co.il/articles/0,7340,L-1,00.html",quake\n')
    assert read_gold(gold) == {"https://www.ynet.co.il/articles/0,7340,L-1,00.html": "quake"}


def test_gold_matches_by_canonical_url_then_by_path() -> None:
    gold = {
        "http://127.0.0.1:8765/o/a.html?utm_source=rss": "e1",
        "http://127.0.0.1:8765/o/b.html": "e1",
        "http://127.0.0.1:8765/o/missing.html": "e2",
    }
    predicted = {"http://127.0.0.1:4242/o/a.html": "x", "http://127.0.0.1:4242/o/b.html": "x"}
    g, p, missing = match_gold(gold, predicted)
    assert missing == 1 and set(p.values()) == {"x"} and len(g) == 2
