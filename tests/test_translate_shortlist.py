"""Vocabulary shortlists on the tiny MarianMT model: built, installed, used, checked, refused."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.records import Segment
from pipeline.settings import PROJECT_ROOT, Settings, TranslateSettings, load_settings
from pipeline.translate import translate_segments
from pipeline.translate.convert import convert_model, converted_folder
from pipeline.translate.engines import CTranslate2Engine
from pipeline.translate.registry import load_registry, model_folder
from pipeline.translate.shortlist import (
    CHECK_FILE,
    VMAP_FILE,
    build_shortlist,
    build_vocabulary_map,
    check_agreement,
    read_check,
    vmap_status,
)

REGISTRY = PROJECT_ROOT / "models" / "registry.toml"
SPEC = load_registry(REGISTRY)["he"]
TS = TranslateSettings(max_new_tokens=12, batch_size=8, max_batch_tokens=512, inter_threads=1)


def _hebrew() -> list[str]:
    from tests.tiny_marian import corpus_lines

    return [ln for ln in corpus_lines() if "\u0590" <= ln[0] <= "\u05ff"]


@pytest.fixture(scope="module")
def converted(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with the tiny he-en model and its int8 CTranslate2 copy."""
    root = tmp_path_factory.mktemp("shortlist-models")
    folder = model_folder(root, SPEC)
    shutil.copytree(model_folder(tiny_models_dir, SPEC), folder)
    convert_model(folder, converted_folder(folder, "int8"), "int8")
    return root


@pytest.fixture()
def models(converted: Path, tmp_path: Path) -> Path:
    """A private copy: installing a map changes the converted folder."""
    return Path(shutil.copytree(converted, tmp_path / "models"))


def _engine(models: Path, use_vmap: bool = False) -> CTranslate2Engine:
    folder = model_folder(models, SPEC)
    return CTranslate2Engine(
        converted_folder(folder, "int8"), folder, SPEC, TS, device="cpu", use_vmap=use_vmap
    )


def _settings(tmp_path: Path, models: Path, **translate: object) -> Settings:
    base = load_settings(
        warehouse=str(tmp_path / "wh.duckdb"),
        runtime_dir=tmp_path / "var",
        models_dir=models,
        registry_path=REGISTRY,
    )
    ts = replace(TS, engine="ctranslate2", retry_beams=0, **translate)  # type: ignore[arg-type]
    return replace(base, translate=ts)


def test_vocabulary_map_from_translations() -> None:
    pairs = [
        (["▁a", "▁x", "</s>"], ["▁the", "▁A", "</s>"]),
        (["▁a", "▁y", "</s>"], ["▁the", "▁A", "▁Y"]),
        (["▁b", "</s>"], ["▁the", "▁B"]),
    ]
    vmap = build_vocabulary_map(pairs, size=1, per_source=1, target_vocab=frozenset({"▁b"}))
    assert vmap.always == ["▁the"]  # the most frequent target piece
    assert vmap.by_source["▁a"] == ["▁A"]  # seen twice with ▁a; ▁Y once, cut by per_source
    assert vmap.by_source["▁b"] == ["▁B", "▁b"]  # plus itself: in the target vocabulary
    assert vmap.by_source["▁y"] == ["▁Y"]  # ▁A and ▁Y once each: the rarer, more specific
    assert "</s>" not in vmap.by_source and vmap.candidates(["▁a", "▁y"]) == {"▁the", "▁A", "▁Y"}
    lines = vmap.to_text().splitlines()
    assert lines[0] == "\t▁the" and "▁a\t▁A" in lines


def test_shortlist_built_installed_used_and_checked(models: Path) -> None:
    engine = _engine(models)
    sentences = _hebrew()
    result = build_shortlist(engine, sentences, size=30, per_source=3, built_from="test")
    ct2 = engine.folder
    assert (ct2 / VMAP_FILE).is_file() and (ct2 / CHECK_FILE).is_file()
    check = read_check(ct2)
    assert check is not None and check == result.check
    held = sentences[9::10]
    assert check.sentences == len(held) and check.held_back
    assert result.sentences == len(sentences) - len(held)
    # The check's figures are what translating the held-back sample both ways gives.
    full = _engine(models).translate(held)
    shortlisted = _engine(models, use_vmap=True)
    short = shortlisted.translate(held)
    assert (check.exact_match, check.chrf) == pytest.approx(check_agreement(full, short))
    assert 0.0 <= check.chrf <= 1.0 and 0.0 <= check.exact_match <= 1.0
    # CTranslate2 really decodes inside the map: every piece is a candidate of its batch.
    lines = (ct2 / VMAP_FILE).read_text(encoding="utf-8").splitlines()
    always = set(lines[0].split("\t")[1].split())
    mapped = {k: set(v.split()) for k, v in (ln.split("\t") for ln in lines[1:])}
    allowed = always | {"</s>", "<unk>", "<s>"}
    for pieces in shortlisted.source_pieces(held):
        allowed |= set().union(*(mapped.get(p, set()) for p in pieces))
    produced = {t for toks in shortlisted.generate_tokens(held) for t in toks}
    assert produced <= allowed
    unrestricted = {t for toks in _engine(models).generate_tokens(held) for t in toks}
    assert not unrestricted <= allowed  # the tiny random model wanders outside the map
    assert check.exact_match < 1.0


def test_stage_uses_a_checked_shortlist_and_records_it(models: Path, tmp_path: Path) -> None:
    engine = _engine(models)
    build_shortlist(engine, _hebrew(), size=60, per_source=8)
    check = read_check(engine.folder)
    assert check is not None
    settings = _settings(tmp_path, models, use_vmap=True, vmap_min_chrf=check.chrf)
    held = _hebrew()[9::10][:6]
    segs = [Segment("a", n, 0, t, "he") for n, t in enumerate(held)]
    rows, result = translate_segments(segs, settings, None)
    assert result.counts["translated"] == len(held)
    options = [json.loads(t.decoding) for t in rows]
    assert all(o["use_vmap"] is True for o in options)
    assert {o["vmap_sha256"] for o in options} == {check.map_sha256[:16]}
    assert [t.text_en for t in rows] == _engine(models, use_vmap=True).translate(held)
    # without the setting: the full vocabulary, recorded as such
    plain, _ = translate_segments(segs, _settings(tmp_path, models), None)
    assert all(json.loads(t.decoding)["use_vmap"] is False for t in plain)
    assert [t.text_en for t in plain] == _engine(models).translate(held)


def test_stage_refuses_a_shortlist_below_the_bar(
    models: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ct2 = converted_folder(model_folder(models, SPEC), "int8")
    build_shortlist(_engine(models), _hebrew(), size=1, per_source=0, check=False)
    status = vmap_status(ct2, 0.98, "he-en")
    assert not status.usable and "no recorded check" in status.reason
    assert "parallax models shortlist --pair he-en --check" in status.reason
    result = build_shortlist(_engine(models), _hebrew(), size=1, per_source=0)
    assert result.check is not None and result.check.chrf < 0.98  # a one-piece list is poor
    settings = _settings(tmp_path, models, use_vmap=True)
    held = _hebrew()[9::10][:4]
    segs = [Segment("a", n, 0, t, "he") for n, t in enumerate(held)]
    with caplog.at_level(logging.WARNING, logger="pipeline.translate"):
        rows, _ = translate_segments(segs, settings, None)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "refused" in warning and "vmap_min_chrf = 0.980" in warning and "\n" not in warning
    assert all(json.loads(t.decoding)["use_vmap"] is False for t in rows)
    assert [t.text_en for t in rows] == _engine(models).translate(held)


def test_shortlist_command(models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.cli import app

    corpus = tmp_path / "he.txt"
    corpus.write_text("\n".join(_hebrew()) + "\n", encoding="utf-8")
    monkeypatch.setenv("PARALLAX_MODELS_DIR", str(models))
    monkeypatch.setenv("PARALLAX_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    runner = CliRunner()
    args = ["models", "shortlist", "--pair", "he-en", "--corpus", str(corpus), "--size", "40"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "exact_match=" in res.output and "chrf=" in res.output
    assert read_check(converted_folder(model_folder(models, SPEC), "int8")) is not None
    res = runner.invoke(app, ["models", "shortlist", "--pair", "xx-en", "--corpus", str(corpus)])
    assert res.exit_code == 1 and "no model for pair" in res.output
    res = runner.invoke(app, ["models", "shortlist", "--pair", "he-en"])
    assert res.exit_code == 2
