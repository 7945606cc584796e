"""A model that fails on one sentence: that sentence stays pending and is flagged as a reject,
the rest of its batch is translated and stored.

The engine is the tiny Marian model (real transformers generation) behind a wrapper that
behaves as a broken model does on particular inputs: it raises on one sentence and answers NaN
for another, whatever batch they arrive in.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pipeline import warehouse
from pipeline.records import Segment
from pipeline.settings import Settings, load_settings
from pipeline.translate import translate_segments

RAISES = "הוועדה דחתה את הדוח הזה ולא אמרה דבר נוסף על התוכנית."
NAN = "המשטרה פרסמה את ההחלטה על המבצע בצפון."
EMPTY = "הכנסת דנה בהצעת החוק החדשה של הממשלה."
GOOD = [
    "הממשלה הודיעה על התוכנית החדשה.",
    "הצבא אישר את ההסכם.",
    "ראש העיר בחן את התקציב.",
    "השר גינה את הדוח.",
]


class BrokenOn:
    """The real engine, failing the way a broken model does on two particular sentences."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.model_id = engine.model_id
        self.engine_name = engine.engine_name
        self.calls: list[int] = []

    def translate(self, sentences: list[str], *, num_beams: int | None = None) -> list[Any]:
        self.calls.append(len(sentences))
        if RAISES in sentences:
            raise RuntimeError("CUDA error: device-side assert triggered")
        out: list[Any] = self.engine.translate(sentences, num_beams=num_beams)
        return [
            math.nan if s == NAN else "" if s == EMPTY else o
            for s, o in zip(sentences, out, strict=True)
        ]


def _settings(tmp: Path, models: Path) -> Settings:
    return load_settings(
        warehouse=str(tmp / "wh.duckdb"),
        runtime_dir=tmp / "var",
        models_dir=models,
        translate={"max_new_tokens": 8, "retry_beams": 0},
    )


def test_one_failing_sentence_stays_pending_the_rest_is_stored(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    from pipeline.translate.engines import load_engine
    from pipeline.translate.registry import load_registry, model_folder

    settings = _settings(tmp_path, tiny_models_dir)
    spec = load_registry(settings.registry_path)["he"]
    broken = BrokenOn(
        load_engine(spec, model_folder(settings.models_dir, spec), settings.translate)
    )
    texts = [GOOD[0], RAISES, GOOD[1], NAN, GOOD[2], GOOD[3], EMPTY]
    segments = [Segment("a1", n, 0, t, "he") for n, t in enumerate(texts)]
    segments.append(Segment("a2", 0, 0, RAISES, "he"))  # the same bad sentence elsewhere

    with warehouse.open_warehouse(settings) as con:
        con.execute(
            "INSERT INTO articles (article_id, outlet_id, url, title, text, text_source, "
            "text_sha256, lang) VALUES ('a1', 'o', 'u1', 't', 'x', 'feed', 'h1', 'he'), "
            "('a2', 'o', 'u2', 't', 'y', 'feed', 'h2', 'he')"
        )
        warehouse.load_segments(con, segments)
        rows, result = translate_segments(segments, settings, None, engines={"he": broken})
        warehouse.load_translations(con, rows)
        warehouse.load_rejects(con, result.rejects)
        pending = con.execute(
            "SELECT article_id, seg_no FROM pending_translations ORDER BY ALL"
        ).fetchall()
        rejects = con.execute(
            "SELECT stage, url, reason, detail FROM rejects ORDER BY url"
        ).fetchall()
        stored = con.execute("SELECT count(*) FROM translations").fetchall()[0][0]

    assert {(r.article_id, r.seg_no) for r in rows} == {("a1", n) for n in (0, 2, 4, 5)}
    assert all(isinstance(r.text_en, str) and r.text_en for r in rows)
    assert stored == 4
    assert pending == [("a1", 1), ("a1", 3), ("a1", 6), ("a2", 0)]
    assert result.counts["failed"] == 4 and result.counts["pending"] == 4
    assert result.counts["translated"] == 4
    assert [(s, u, r) for s, u, r, _ in rejects] == [
        ("translate", "segment:a1#1", "translation_failed"),
        ("translate", "segment:a1#3", "translation_failed"),
        ("translate", "segment:a1#6", "translation_failed"),
        ("translate", "segment:a2#0", "translation_failed"),
    ]
    assert "device-side assert" in rejects[0][3] and "nan" in rejects[1][3]
    assert "empty output" in rejects[2][3]
    # the batch was split to isolate the bad sentences, not retried one by one from the start
    assert broken.calls[0] == 7 and len(broken.calls) < 2 * 7  # 7 distinct sentences


def test_an_engine_failing_on_everything_leaves_all_pending_once(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    class Dead:
        model_id = "Helsinki-NLP/opus-mt-he-en"
        engine_name = "transformers"
        calls = 0

        def translate(self, sentences: list[str], *, num_beams: int | None = None) -> list[str]:
            Dead.calls += 1
            raise MemoryError("out of memory")

    settings = _settings(tmp_path, tiny_models_dir)
    segments = [Segment("a", n, 0, t, "he") for n, t in enumerate(GOOD)]
    rows, result = translate_segments(segments, settings, None, engines={"he": Dead()})  # type: ignore[dict-item]
    assert rows == []
    assert result.counts["pending"] == 4 and result.counts["failed"] == 4
    assert Dead.calls == 2 * len(GOOD) - 1  # one bisection of the batch, then given up


def test_an_empty_answer_is_retried_then_left_pending_and_never_cached(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    """Empty output for a real sentence: the beam-search retry gets a chance; empty again, the
    sentence stays pending with a reject and no cache entry (a re-run asks the model again);
    an empty answer already in an older cache is not served."""
    from pipeline.records import sha256_text
    from pipeline.translate.cache import SnapshotCache
    from pipeline.translate.engines import load_engine
    from pipeline.translate.registry import load_registry, model_folder

    settings = load_settings(
        warehouse=str(tmp_path / "wh.duckdb"),
        runtime_dir=tmp_path / "var",
        models_dir=tiny_models_dir,
        translate={"max_new_tokens": 8, "retry_beams": 2},
    )
    spec = load_registry(settings.registry_path)["he"]
    real = load_engine(spec, model_folder(settings.models_dir, spec), settings.translate)

    class EmptyUnlessBeams(BrokenOn):
        """Answers GOOD[0] with nothing at greedy decoding only; EMPTY with nothing always."""

        def translate(self, sentences: list[str], *, num_beams: int | None = None) -> list[Any]:
            out = self.engine.translate(sentences, num_beams=num_beams)
            return [
                "" if s == EMPTY or (s == GOOD[0] and not num_beams) else o
                for s, o in zip(sentences, out, strict=True)
            ]

    stale = (spec.hf_id, sha256_text(GOOD[1]), "")  # an empty answer cached by an older run
    cache = SnapshotCache([stale])
    segments = [Segment("a", n, 0, t, "he") for n, t in enumerate([GOOD[0], GOOD[1], EMPTY])]
    rows, result = translate_segments(
        segments, settings, cache, engines={"he": EmptyUnlessBeams(real)}
    )
    assert {r.seg_no for r in rows} == {0, 1}
    assert all(r.text_en.strip() and not r.flagged for r in rows)
    assert result.counts["retried"] == 2  # GOOD[0] and EMPTY went back for beam search
    assert result.counts["failed"] == 1 and result.counts["pending"] == 1
    assert [(r.url, r.reason) for r in result.rejects] == [("segment:a#2", "translation_failed")]
    cached = cache.get_many(spec.hf_id, [sha256_text(t) for t in (GOOD[0], GOOD[1], EMPTY)])
    assert set(cached) == {sha256_text(GOOD[0]), sha256_text(GOOD[1])}
    assert all(cached.values())


def test_the_warehouse_cache_replaces_an_old_empty_answer(settings: Settings) -> None:
    from pipeline.translate.cache import DuckDBTranslationCache

    with warehouse.open_warehouse(settings) as con:
        cache = DuckDBTranslationCache(con)
        cache.put_many("m", [("h1", "src one", ""), ("h2", "src two", "two")], engine="e")
        cache.put_many("m", [("h1", "src one", "one"), ("h2", "src two", "TWO")], engine="e")
        assert cache.get_many("m", ["h1", "h2"]) == {"h1": "one", "h2": "two"}
