"""Both engines on the tiny MarianMT model: conversion, agreement, cache, guard, metadata."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from pipeline import warehouse
from pipeline.records import Segment
from pipeline.settings import PROJECT_ROOT, Settings, TranslateSettings, load_settings
from pipeline.translate import translate_segments
from pipeline.translate.cache import DuckDBTranslationCache
from pipeline.translate.convert import (
    ConvertError,
    check_converted_folder,
    convert_model,
    converted_folder,
    marian_vocabulary,
)
from pipeline.translate.engines import CTranslate2Engine, MarianEngine, split_for_model
from pipeline.translate.guard import check_translation, repetition_loop
from pipeline.translate.registry import load_registry, model_folder

REGISTRY = PROJECT_ROOT / "models" / "registry.toml"
HE_ID = "Helsinki-NLP/opus-mt-he-en"
HE = [
    "הממשלה אישרה את התקציב החדש.",
    "השר דחה את ההסכם ביום שלישי.",
    "המשטרה פרסמה את הדוח.",
    "הצבא הודיע על המבצע בצפון, 3/4.",
]
AR = ["وافقت الحكومة على الميزانية.", "أدان الوزير القرار."]
SPEC = load_registry(REGISTRY)["he"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model under both registry ids, each with int8 and float32 CTranslate2 copies."""
    from tests.tiny_marian import make_models_dir

    root = make_models_dir(tmp_path_factory.mktemp("engine-models"))
    for spec in load_registry(REGISTRY).values():
        folder = model_folder(root, spec)
        for q in ("int8", "none"):
            convert_model(folder, converted_folder(folder, q), q)
    return root


def _settings(tmp_path: Path, models_dir: Path, engine: str) -> Settings:
    base = load_settings(
        warehouse=str(tmp_path / "wh.duckdb"),
        runtime_dir=tmp_path / "var",
        models_dir=models_dir,
        registry_path=REGISTRY,
    )
    ts = replace(base.translate, engine=engine, max_new_tokens=12, batch_size=4)
    return replace(base, translate=ts)


def _warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    warehouse.migrate(con, PROJECT_ROOT / "warehouse")
    return con


def _segments(texts: list[str], lang: str, article: str = "a") -> list[Segment]:
    return [Segment(article, n, 0, t, lang) for n, t in enumerate(texts)]


# ------------------------------------------------------------------ conversion


def test_conversion_writes_a_loadable_copy(models: Path) -> None:
    folder = model_folder(models, SPEC)
    target = converted_folder(folder, "int8")
    assert target.name == "Helsinki-NLP--opus-mt-he-en--ct2-int8"
    assert check_converted_folder(target) == []
    vocab = json.loads((target / "shared_vocabulary.json").read_text(encoding="utf-8"))
    source_vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == len(source_vocab) - 1 and "<pad>" not in vocab  # pad dropped, as Marian
    assert vocab[:2] == ["</s>", "<unk>"]
    assert not target.with_name(target.name + ".partial").exists()


def test_conversion_refuses_inconsistent_vocabulary(models: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(model_folder(models, SPEC), broken)
    vocab = json.loads((broken / "vocab.json").read_text(encoding="utf-8"))
    del vocab[next(t for t, i in vocab.items() if i == 5)]
    (broken / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    with pytest.raises(ConvertError, match="does not cover"):
        convert_model(broken, tmp_path / "out", "int8")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConvertError, match="pad"):
        marian_vocabulary(model_folder(models, SPEC), len(vocab) + 1, pad_id=3)


def test_conversion_of_missing_folder_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConvertError, match="does not exist"):
        convert_model(tmp_path / "nope", tmp_path / "out", "int8")


# ------------------------------------------------------------------ engines agree


def test_float32_ctranslate2_greedy_equals_transformers_token_for_token(models: Path) -> None:
    folder = model_folder(models, SPEC)
    ts = TranslateSettings(max_new_tokens=12, batch_size=4, max_batch_tokens=256)
    reference = MarianEngine(folder, SPEC, ts)
    fast = CTranslate2Engine(
        converted_folder(folder, "none"), folder, SPEC, ts, device="cpu", compute_type="float32"
    )
    sentences = HE + AR
    ids = reference.generate_ids(sentences, forced_eos=False)
    tokens = fast.generate_tokens(sentences)
    assert [reference.tokenizer.convert_ids_to_tokens(i) for i in ids] == tokens
    assert all(len(t) > 0 for t in tokens)
    # The text path agrees too, short of transformers' forced </s> on the 12th token.
    int8 = CTranslate2Engine(converted_folder(folder, "int8"), folder, SPEC, ts, device="cpu")
    assert int8.compute_type == "int8"
    assert len(int8.translate(sentences)) == len(sentences)


def test_both_engines_through_the_stage_same_shape_and_cache_hits(
    models: Path, tmp_path: Path
) -> None:
    segs = _segments(HE, "he") + _segments(AR, "ar", "b") + [Segment("c", 0, 0, "Hello.", "en")]
    results = {}
    for engine in ("transformers", "ctranslate2"):
        settings = _settings(tmp_path, models, engine)
        cache = DuckDBTranslationCache(_warehouse())
        rows, first = translate_segments(segs, settings, cache)
        assert first.counts["translated"] == 6 and first.counts["pending"] == 0
        assert {t.engine for t in rows if t.model_id != "identity"} == {engine}
        again, second = translate_segments(segs, settings, cache, engines={})
        assert second.counts["cache_hits"] == 6 and second.counts["translated"] == 0
        # same text and same guard flags from the cache; the decoding notes it was cached
        assert [replace(t, decoding="") for t in again] == [replace(t, decoding="") for t in rows]
        assert all('"cached": true' in t.decoding for t in again if t.model_id != "identity")
        results[engine] = rows
    shape = {e: [(t.article_id, t.seg_no, t.model_id) for t in r] for e, r in results.items()}
    assert shape["transformers"] == shape["ctranslate2"]


def test_missing_converted_copy_leaves_segments_pending(
    models: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "models"
    folder = model_folder(models, SPEC)
    shutil.copytree(folder, model_folder(store, SPEC))  # the HF folder only, no CTranslate2 copy
    settings = _settings(tmp_path, store, "ctranslate2")
    manual = replace(settings, translate=replace(settings.translate, auto_convert=False))
    with caplog.at_level(logging.WARNING, logger="pipeline.translate"):
        rows, result = translate_segments(_segments(HE, "he"), manual, None)
    assert rows == [] and result.counts["pending"] == len(HE)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "parallax models convert" in warning and "--ct2-int8" in warning
    # by default the copy is made on first use, and the segments are translated
    rows, result = translate_segments(_segments(HE, "he"), settings, None)
    assert len(rows) == len(HE) and result.counts.get("pending", 0) == 0
    assert {t.engine for t in rows} == {"ctranslate2"}
    assert not check_converted_folder(converted_folder(model_folder(store, SPEC), "int8"))


def test_long_sentence_split_under_position_limit(models: Path) -> None:
    folder = model_folder(models, SPEC)
    engine = MarianEngine(folder, SPEC, TranslateSettings(max_new_tokens=6, batch_size=8))
    clause = "הממשלה אישרה את התקציב החדש, "
    long = (clause * 40).strip()
    (n,) = engine.count_tokens([long])
    assert n > engine.max_input_tokens  # the tiny model has 256 positions
    pieces, owners = split_for_model([long], [n], engine.max_input_tokens)
    assert len(pieces) > 1 and owners == [list(range(len(pieces)))]
    assert all(c <= engine.max_input_tokens for c in engine.count_tokens(pieces))
    expected = " ".join(t for t in engine.translate(pieces) if t)
    assert engine.translate([long]) == [expected]


# ------------------------------------------------------------------ guard


@pytest.mark.parametrize(
    ("source", "output", "flag"),
    [
        ("הממשלה אישרה את התקציב החדש.", "The government approved the new budget.", ""),
        ("הממשלה אישרה את התקציב החדש.", "", "empty"),
        ("הממשלה אישרה את התקציב.", "The the the the government", "repetition"),
        ("השר דחה את ההסכם.", "The minister said that the minister said that " * 4, "repetition"),
        ("לא לא לא לא!", "No no no no!", ""),  # the source repeats itself: faithful
        ("הממשלה אישרה את התקציב החדש היום.", "Yes.", "length_ratio"),
        (
            "הממשלה אישרה את התקציב.",
            "A long invented story about many things. " * 6,
            "length_ratio",
        ),
        ("שלום", "Hello there, and welcome to all of our readers", ""),  # too short to judge
        ("  ", "", ""),
    ],
)
def test_guard_flags(source: str, output: str, flag: str) -> None:
    assert check_translation(source, output) == flag


def test_repetition_loop_finds_ngrams() -> None:
    assert repetition_loop(list("abcabcabcabc"), 4, 4) == "a b c"
    assert repetition_loop(list("abcabcabc"), 4, 4) == ""
    assert repetition_loop([], 4, 4) == ""


@pytest.fixture(scope="module")
def looping_models(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Marian model that always emits the same piece: a planted repetition loop."""
    import torch
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("looping")
    src = model_folder(models, SPEC)
    dst = model_folder(root, SPEC)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*--ct2-*"))
    vocab = json.loads((dst / "vocab.json").read_text(encoding="utf-8"))
    weights = load_file(str(dst / "model.safetensors"))
    bias = torch.zeros_like(weights["final_logits_bias"])
    bias[0, vocab["▁"]] = -1e4  # keep the loop visible as words, not one glued token
    bias[0, vocab["he"]] = 1e4
    weights["final_logits_bias"] = bias
    save_file(weights, str(dst / "model.safetensors"), metadata={"format": "pt"})
    convert_model(dst, converted_folder(dst, "int8"), "int8")
    return root


@pytest.mark.parametrize("engine", ["transformers", "ctranslate2"])
def test_guard_flags_a_looping_model_after_retry(
    looping_models: Path, tmp_path: Path, engine: str
) -> None:
    settings = _settings(tmp_path, looping_models, engine)
    rows, result = translate_segments(_segments(HE[:2], "he"), settings, None)
    assert [t.flagged for t in rows] == ["repetition", "repetition"], [t.text_en for t in rows]
    assert result.counts["retried"] == 2 and result.counts["flagged"] == 2


# ------------------------------------------------------------------ reproducibility


def test_metadata_stored_with_each_row(models: Path, tmp_path: Path) -> None:
    con = _warehouse()
    settings = _settings(tmp_path, models, "ctranslate2")
    rows, _ = translate_segments(
        _segments(HE, "he") + [Segment("e", 0, 0, "Hi.", "en")],
        settings,
        DuckDBTranslationCache(con),
    )
    warehouse.load_translations(con, rows)
    stored = con.execute(
        "SELECT seg_no, model_id, engine, revision, decoding, flagged FROM translations "
        "WHERE article_id = 'a' ORDER BY seg_no"
    ).fetchall()
    assert len(stored) == len(HE)
    by_seg = {t.seg_no: t for t in rows if t.article_id == "a"}
    for seg_no, model_id, engine, revision, decoding, flagged in stored:
        assert (model_id, engine, revision) == (HE_ID, "ctranslate2", SPEC.revision)
        options = json.loads(decoding)
        assert options["engine"] == "ctranslate2" and options["compute_type"] == "int8"
        assert options["max_new_tokens"] == 12
        assert options["num_beams"] == (4 if options.get("retry") else 1)
        assert options.get("retry") or not flagged  # a flag always comes after a retry
        assert flagged == by_seg[seg_no].flagged
    identity = con.execute("SELECT revision FROM translations WHERE model_id = 'identity'")
    assert identity.fetchall() == [("",)]


# ------------------------------------------------------------------ evaluation


def test_evaluate_translation_scores_each_pair_and_engine(models: Path, tmp_path: Path) -> None:
    from pipeline.eval.translation import PairsFileError, evaluate_translation

    pairs = tmp_path / "pairs.tsv"
    lines = ["src_lang\tsource\treference"]
    lines += [f"he\t{s}\tThe government approved the budget." for s in HE]
    lines += [f"ar\t{s}\tThe minister condemned the decision." for s in AR]
    lines += ["en\tPolice published the report.\tPolice published the report."]
    pairs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    scores = evaluate_translation(pairs, _settings(tmp_path, models, ""))
    got = [(s.pair, s.engine, s.sentences, s.translated) for s in scores]
    assert got == [
        ("he-en", "ctranslate2", 4, 4),
        ("ar-en", "ctranslate2", 2, 2),
        ("en-en", "ctranslate2", 1, 1),
        ("he-en", "transformers", 4, 4),
        ("ar-en", "transformers", 2, 2),
        ("en-en", "transformers", 1, 1),
    ]
    for s in scores:
        assert s.bleu is not None and s.chrf is not None
        assert 0.0 <= s.bleu <= 100.0 + 1e-9 and 0.0 <= s.chrf <= 100.0 + 1e-9
        if s.pair == "en-en":  # English passes through: identical to its reference
            assert s.bleu == pytest.approx(100.0) and s.chrf == pytest.approx(100.0)
        else:  # random weights: nonsense English
            assert s.chrf < 50.0
    pairs.write_text("lang\tsource\nhe\tשלום\n", encoding="utf-8")
    with pytest.raises(PairsFileError, match="reference"):
        evaluate_translation(pairs, _settings(tmp_path, models, ""))
