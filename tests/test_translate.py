"""Translate stage over the tiny MarianMT model, loaded through the real code path."""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from pipeline.records import Segment, Translation, sha256_text
from pipeline.settings import PROJECT_ROOT, Settings, TranslateSettings, load_settings
from pipeline.translate import translate_segments
from pipeline.translate.cache import DuckDBTranslationCache
from pipeline.translate.engines import Engine, MarianEngine, plan_batches
from pipeline.translate.guard import check_translation
from pipeline.translate.registry import load_registry, model_folder

HE = [
    "הממשלה אישרה את התקציב החדש.",
    "השר דחה את ההסכם ביום שלישי.",
    "המשטרה פרסמה את הדוח.",
]
AR = ["وافقت الحكومة على الميزانية.", "أدان الوزير القرار.", "نشرت اللجنة التقرير."]
EN = ["The army announced the operation.", "Police published the report."]


@pytest.fixture(scope="session")
def _tiny_models(tiny_models_dir: Path) -> Path:
    return tiny_models_dir


def _settings(tmp_path: Path, models_dir: Path) -> Settings:
    base = load_settings(
        warehouse=str(tmp_path / "wh.duckdb"),
        runtime_dir=tmp_path / "var",
        models_dir=models_dir,
        registry_path=PROJECT_ROOT / "models" / "registry.toml",
    )
    # Random weights never emit </s>: keep generation short so tests stay fast.
    return replace(base, translate=replace(base.translate, max_new_tokens=12, batch_size=4))


def _cache() -> DuckDBTranslationCache:
    con = duckdb.connect(":memory:")
    con.execute((PROJECT_ROOT / "warehouse" / "001_schema.sql").read_text(encoding="utf-8"))
    return DuckDBTranslationCache(con)


def _segments(article_id: str, texts: list[str], lang: str, start: int = 0) -> list[Segment]:
    return [Segment(article_id, start + n, 0, t, lang) for n, t in enumerate(texts)]


def _mixed() -> list[Segment]:
    return (
        _segments("a-he", HE, "he")
        + _segments("a-ar", AR, "ar")
        + _segments("a-en", EN, "en")
        + [Segment("a-fr", 0, 0, "Le gouvernement a approuvé le budget.", "fr")]
        + [Segment("a-und", 0, 0, "12345", "und")]
    )


class CountingEngine:
    """Delegates to a real engine and records what it was asked to translate."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.engine_name = inner.engine_name
        self.calls: list[list[str]] = []

    def translate(self, sentences: list[str], *, num_beams: int | None = None) -> list[str]:
        self.calls.append(list(sentences))
        return self.inner.translate(sentences, num_beams=num_beams)


@pytest.fixture(scope="session")
def _engines(_tiny_models: Path) -> dict[str, MarianEngine]:
    registry = load_registry(PROJECT_ROOT / "models" / "registry.toml")
    settings = TranslateSettings(max_new_tokens=12, batch_size=4)
    return {
        lang: MarianEngine(model_folder(_tiny_models, spec), spec, settings)
        for lang, spec in registry.items()
    }


def test_mixed_batch_translates_he_ar_and_passes_en(tmp_path: Path, _tiny_models: Path) -> None:
    settings = _settings(tmp_path, _tiny_models)
    segs = _mixed()
    seen: list[tuple[int, int]] = []
    rows, result = translate_segments(
        segs, settings, _cache(), progress=lambda d, t: seen.append((d, t))
    )
    by_key = {(t.article_id, t.seg_no): t for t in rows}
    for seg in segs:
        if seg.lang in ("he", "ar"):
            t = by_key[(seg.article_id, seg.seg_no)]
            assert t.model_id == f"Helsinki-NLP/opus-mt-{seg.lang}-en"
            assert t.engine == "ctranslate2"  # the registry's engine: the fast path by default
            # The guard's verdict on what was kept (the random tiny model often loops).
            assert t.flagged == check_translation(seg.text, t.text_en)
            assert t.source_sha256 == sha256_text(seg.text)
            assert t.text_en.strip() and t.text_en != seg.text
        elif seg.lang == "en":
            t = by_key[(seg.article_id, seg.seg_no)]
            assert (t.model_id, t.text_en) == ("identity", seg.text)
        else:
            assert (seg.article_id, seg.seg_no) not in by_key
    assert [(t.article_id, t.seg_no) for t in rows] == [
        (s.article_id, s.seg_no) for s in segs if s.lang in ("he", "ar", "en")
    ]
    flagged = sum(1 for t in rows if t.flagged)
    assert result.counts["flagged"] == flagged and result.counts["retried"] >= flagged
    assert {
        k: v for k, v in result.counts.items() if k not in ("flagged", "retried", "retry_ms")
    } == {
        "passthrough": 2,
        "cache_hits": 0,
        "translated": 6,
        "deduplicated": 0,
        "pending": 0,
        "untranslatable": 2,
    }
    assert seen[-1] == (6, 6)
    # Different inputs give different outputs: the model really sees its input.
    assert len({by_key[("a-he", n)].text_en for n in range(3)}) > 1


def test_same_input_same_output(tmp_path: Path, _tiny_models: Path) -> None:
    settings = _settings(tmp_path, _tiny_models)
    first, _ = translate_segments(_mixed(), settings, None)
    second, _ = translate_segments(_mixed(), settings, None)
    assert first == second


def test_second_call_is_served_from_cache(
    tmp_path: Path, _tiny_models: Path, _engines: dict[str, MarianEngine]
) -> None:
    settings = _settings(tmp_path, _tiny_models)
    cache = _cache()
    first, r1 = translate_segments(_mixed(), settings, cache)
    assert r1.counts["translated"] == 6
    (n_cached,) = cache.con.execute("SELECT count(*) FROM translation_cache").fetchall()[0]
    assert n_cached == 6
    counting = {lang: CountingEngine(e) for lang, e in _engines.items()}
    second, r2 = translate_segments(_mixed(), settings, cache, engines=dict[str, Engine](counting))
    assert all(not e.calls for e in counting.values())
    assert r2.counts["cache_hits"] == 6 and r2.counts["translated"] == 0
    assert [replace(t, decoding="") for t in second] == [replace(t, decoding="") for t in first]


def test_cache_round_trip_keeps_first_text() -> None:
    cache = _cache()
    cache.put_many("m", [("h1", "src", "one"), ("h2", "src2", "two")], engine="transformers")
    cache.put_many("m", [("h1", "src", "changed")], engine="transformers")
    assert cache.get_many("m", ["h1", "h2", "h3", "h1"]) == {"h1": "one", "h2": "two"}
    assert cache.get_many("other-model", ["h1"]) == {}
    assert cache.get_many("m", []) == {}


def test_identical_sentences_translated_once(
    tmp_path: Path, _tiny_models: Path, _engines: dict[str, MarianEngine]
) -> None:
    settings = _settings(tmp_path, _tiny_models)
    segs = _segments("art-1", HE, "he") + _segments("art-2", [HE[0], "משפט אחר לגמרי."], "he")
    counting = CountingEngine(_engines["he"])
    rows, result = translate_segments(segs, settings, _cache(), engines={"he": counting})
    # One call for the distinct sentences; a second only for those the guard sent back.
    assert counting.calls[0] == [*HE, "משפט אחר לגמרי."]
    assert len(counting.calls) <= 2 and set(counting.calls[-1]) <= set(counting.calls[0])
    assert result.counts["translated"] == 4 and result.counts["deduplicated"] == 1
    by_key = {(t.article_id, t.seg_no): t.text_en for t in rows}
    assert by_key[("art-1", 0)] == by_key[("art-2", 0)]
    assert len(rows) == 5


def test_missing_model_leaves_segments_pending(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path, tmp_path / "no-models")
    with caplog.at_level(logging.WARNING, logger="pipeline.translate"):
        rows, result = translate_segments(_mixed(), settings, _cache())
    assert [t.model_id for t in rows] == ["identity", "identity"]
    assert result.counts["pending"] == 6 and result.counts["passthrough"] == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one per missing model, not one per segment
    he = next(w for w in warnings if "opus-mt-he-en" in w)
    assert str(tmp_path / "no-models" / "Helsinki-NLP--opus-mt-he-en") in he
    assert "parallax models download" in he and "PARALLAX_MODELS_DIR" in he


def test_missing_model_still_serves_cached_sentences(tmp_path: Path) -> None:
    settings = _settings(tmp_path, tmp_path / "no-models")
    cache = _cache()
    cache.put_many("Helsinki-NLP/opus-mt-he-en", [(sha256_text(HE[0]), HE[0], "cached")], "x")
    rows, result = translate_segments(_segments("a", HE, "he"), settings, cache)
    assert [(t.seg_no, t.text_en) for t in rows] == [(0, "cached")]
    assert result.counts["cache_hits"] == 1 and result.counts["pending"] == 2


def test_corrupt_model_folder_is_pending_not_fatal(
    tmp_path: Path, _tiny_models: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = tmp_path / "models"
    shutil.copytree(_tiny_models, models)
    (models / "Helsinki-NLP--opus-mt-ar-en" / "source.spm").unlink()
    settings = _settings(tmp_path, models)
    with caplog.at_level(logging.WARNING, logger="pipeline.translate"):
        rows, result = translate_segments(_mixed(), settings, _cache())
    assert result.counts["translated"] == 3 and result.counts["pending"] == 3
    assert {t.model_id for t in rows} == {"identity", "Helsinki-NLP/opus-mt-he-en"}
    assert any("missing source.spm" in r.getMessage() for r in caplog.records)


def test_english_only_run_loads_no_model(tmp_path: Path) -> None:
    settings = _settings(tmp_path, tmp_path / "no-models")
    rows, result = translate_segments(_segments("a", EN, "en"), settings, None)
    assert [t.text_en for t in rows] == EN
    assert result.counts["passthrough"] == 2 and result.counts["pending"] == 0


def test_blank_sentence_needs_no_model(tmp_path: Path) -> None:
    settings = _settings(tmp_path, tmp_path / "no-models")
    rows, result = translate_segments([Segment("a", 0, 0, "  ", "he")], settings, None)
    assert [t.text_en for t in rows] == [""] and result.counts["pending"] == 0


def test_engine_keeps_caller_order_across_batches(_engines: dict[str, MarianEngine]) -> None:
    engine = _engines["he"]
    sentences = [HE[0], HE[1] + " " + HE[2] + " " + HE[0], HE[2], HE[1]]
    together = engine.translate(sentences)
    alone = [engine.translate([s])[0] for s in sentences]
    assert together == alone


@pytest.mark.parametrize(
    ("lengths", "batch_size", "max_tokens", "expected"),
    [
        ([3, 10, 5, 10], 2, 1000, [[1, 3], [2, 0]]),
        ([3, 10, 5, 10], 8, 20, [[1, 3], [2, 0]]),
        ([50, 2, 2], 8, 10, [[0], [1, 2]]),
        ([], 4, 100, []),
    ],
)
def test_plan_batches(
    lengths: list[int], batch_size: int, max_tokens: int, expected: list[list[int]]
) -> None:
    assert plan_batches(lengths, batch_size, max_tokens) == expected


def test_english_only_run_never_imports_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pipeline.records import Segment\n"
        "from pipeline.settings import load_settings\n"
        "from pipeline.translate import translate_segments\n"
        f"s = load_settings(models_dir=Path({str(tmp_path)!r}))\n"
        "rows, r = translate_segments([Segment('a', 0, 0, 'Hello.', 'en')], s, None)\n"
        "assert r.counts['passthrough'] == 1\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_on_chunk_streams_rows_chunk_by_chunk(
    tmp_path: Path,
    _tiny_models: Path,
    _engines: dict[str, MarianEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pipeline.translate as translate

    settings = _settings(tmp_path, _tiny_models)
    settings = replace(settings, translate=replace(settings.translate, retry_beams=0))
    segs = _mixed() + _segments("a-he2", [HE[0], HE[1]], "he")  # two repeats of earlier sentences
    whole, r_whole = translate_segments(segs, settings, None, engines=dict[str, Engine](_engines))
    monkeypatch.setattr(translate, "CHUNK_SENTENCES", 2)
    counting = {lang: CountingEngine(e) for lang, e in _engines.items()}
    cache = _cache()
    chunks: list[list[tuple[str, int]]] = []
    streamed: list[Translation] = []

    def take(rows: list[Translation]) -> None:
        chunks.append([(t.article_id, t.seg_no) for t in rows])
        streamed.extend(rows)

    kept, result = translate_segments(
        segs, settings, cache, engines=dict[str, Engine](counting), on_chunk=take
    )
    assert kept == []  # nothing held back: the caller loads each chunk as it comes
    # Same rows (the counting wrapper has no options(), so only the recorded options differ).
    assert sorted(repr(replace(t, decoding="")) for t in streamed) == sorted(
        repr(replace(t, decoding="")) for t in whole
    )
    assert result.counts == {**r_whole.counts, "retry_ms": result.counts["retry_ms"]}
    # At most two distinct sentences per engine call and per chunk (a repeat rides along).
    assert all(len(call) <= 2 for e in counting.values() for call in e.calls if call)
    assert max(len(c) for c in chunks) <= 4 and len(chunks) >= 5
    assert {k for c in chunks for k in c} == {("a-he2", 0), ("a-he2", 1)} | {
        (t.article_id, t.seg_no) for t in whole
    }
    again: list[Translation] = []
    _, r2 = translate_segments(
        segs, settings, cache, engines=dict[str, Engine](counting), on_chunk=again.extend
    )
    assert r2.counts["cache_hits"] == 8 and len(again) == len(streamed)


def test_cache_fill_inside_a_transaction_keeps_memory_flat() -> None:
    """put_many is one set-based statement: thousands of rows in one transaction stay cheap."""
    cache = _cache()
    rows = [(f"h{i}", f"מקור {i}", f"english {i}") for i in range(5000)]
    cache.con.execute("BEGIN")
    cache.put_many("m", rows + [("h0", "src", "second text for h0")], engine="ctranslate2")
    cache.con.execute("COMMIT")
    got = cache.get_many("m", ["h0", "h4999", "nope"])
    assert got == {"h0": "english 0", "h4999": "english 4999"}
    (n,) = cache.con.execute("SELECT count(*) FROM translation_cache").fetchall()[0]
    assert n == 5000
