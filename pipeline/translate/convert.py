"""Convert a MarianMT folder into a CTranslate2 copy (`parallax models convert`).

CTranslate2's own Marian converter builds the vocabulary from ``tokenizer.get_vocab()`` and drops
its last entry when it is ``<pad>``, while it drops the last *row* of the embedding matrix
unconditionally. Both agree only when ``<pad>`` is the model's last id and the tokenizer lists
exactly ``vocab_size`` tokens. A tokenizer that lists one token more or less than the model has
rows (an added token, or a ``vocab.json`` whose ``<pad>`` is not last) fails with "Source
vocabulary 0 has size N but the model expected a vocabulary of size N-1". We build the vocabulary
from ``vocab.json`` and the model's own ``vocab_size`` instead, so any opus-mt layout (65001
entries with ``<pad>`` = 65000 in he-en) converts, and an inconsistent folder is a clear error.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.translate.registry import ModelSpec

log = logging.getLogger(__name__)

CONVERT_COMMAND = "parallax models convert"
QUANTIZATIONS: frozenset[str] = frozenset(
    {"none", "int8", "int8_float32", "int8_float16", "float16", "bfloat16"}
)
CONVERTED_FILES: tuple[str, ...] = ("model.bin", "config.json", "shared_vocabulary.json")


class ConvertError(ValueError):
    """A folder cannot be converted (not Marian, inconsistent vocabulary, unknown quantization)."""


@dataclass(frozen=True)
class ConvertResult:
    source: Path
    target: Path
    quantization: str
    vocab_size: int
    size_bytes: int
    seconds: float


def converted_folder(model_dir: Path, quantization: str) -> Path:
    """The CTranslate2 copy of a model folder lives beside it: ``<folder>--ct2-<quantization>``."""
    q = quantization if quantization not in ("", "none") else "float32"
    return model_dir.with_name(f"{model_dir.name}--ct2-{q}")


def check_converted_folder(path: Path) -> list[str]:
    """What is missing in a converted folder; an empty list means it looks loadable."""
    if not path.is_dir():
        return [f"converted copy {path} does not exist"]
    return [f"missing {n}" for n in CONVERTED_FILES if not (path / n).is_file()]


def describe_missing_conversion(spec: ModelSpec, path: Path, problems: list[str]) -> str:
    """One line a user can act on for an absent or broken converted copy."""
    return (
        f"model {spec.hf_id} ({spec.pair}) has no usable CTranslate2 copy at {path}: "
        f"{'; '.join(problems)}. Run `{CONVERT_COMMAND}` to make it, or set "
        "translate.engine = 'transformers'."
    )


def marian_vocabulary(folder: Path, vocab_size: int, pad_id: int) -> list[str]:
    """Tokens by id as CTranslate2 expects them: the model's ids without the trailing ``<pad>``."""
    try:
        vocab: dict[str, int] = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConvertError(f"{folder / 'vocab.json'} is unreadable: {exc}") from exc
    by_id: dict[int, str] = {}
    for token, idx in vocab.items():
        by_id.setdefault(int(idx), token)
    tokens = [by_id.get(i, "") for i in range(vocab_size)]
    holes = [i for i, t in enumerate(tokens) if not t]
    if holes or len(by_id) > vocab_size and max(by_id) >= vocab_size:
        raise ConvertError(
            f"{folder}: vocab.json does not cover the model's {vocab_size} ids "
            f"(missing {holes[:5]}, largest id {max(by_id)})"
        )
    if pad_id != vocab_size - 1:
        raise ConvertError(
            f"{folder}: <pad> has id {pad_id}, CTranslate2 needs it last ({vocab_size - 1})"
        )
    return tokens[:-1]


def _loader_class() -> type:
    """CTranslate2's Marian loader with a vocabulary taken from vocab.json and the model."""
    from ctranslate2.converters.transformers import MarianMTLoader

    class _FolderVocabMarianLoader(MarianMTLoader):
        folder: Path

        def get_vocabulary(self, model: Any, tokenizer: Any) -> list[str]:
            cfg = model.config
            return marian_vocabulary(self.folder, int(cfg.vocab_size), int(cfg.pad_token_id))

    return _FolderVocabMarianLoader


def convert_model(
    source: Path,
    target: Path,
    quantization: str = "int8",
    *,
    progress: Callable[[str], None] | None = None,
    force: bool = False,
) -> ConvertResult:
    """Write a CTranslate2 copy of the MarianMT folder ``source`` to ``target``.

    The copy is written to a temporary sibling and renamed into place, so an interrupted run never
    leaves a half-converted folder that looks complete. ``progress`` gets one line per step.
    """
    from pipeline.translate.registry import check_model_folder

    say = progress or (lambda msg: log.info("%s", msg))
    if quantization not in QUANTIZATIONS:
        raise ConvertError(f"unknown quantization {quantization!r}; one of {sorted(QUANTIZATIONS)}")
    problems = check_model_folder(source)
    if problems:
        raise ConvertError(f"cannot convert {source}: {'; '.join(problems)}")
    if target.exists() and not force and not check_converted_folder(target):
        raise ConvertError(f"{target} already exists; pass force to overwrite it")
    started = time.monotonic()
    import ctranslate2.converters.transformers as ct2t

    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "marian":
        raise ConvertError(f"{source} is a {config.get('model_type')!r} model, not MarianMT")
    say(f"loading {source}")
    loader = _loader_class()()
    loader.folder = source
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    original = ct2t._MODEL_LOADERS.get("MarianConfig")
    ct2t._MODEL_LOADERS["MarianConfig"] = loader  # scoped: restored below
    try:
        converter = ct2t.TransformersConverter(str(source))
        say(f"converting to CTranslate2 ({quantization})")
        converter.convert(
            str(tmp), quantization=None if quantization == "none" else quantization, force=True
        )
    except (ValueError, RuntimeError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConvertError(f"conversion of {source} failed: {exc}") from exc
    finally:
        if original is not None:
            ct2t._MODEL_LOADERS["MarianConfig"] = original
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    vocab = len(json.loads((target / "shared_vocabulary.json").read_text(encoding="utf-8")))
    seconds = time.monotonic() - started
    say(f"wrote {target} ({size / 1e6:.1f} MB, {vocab} tokens) in {seconds:.1f}s")
    return ConvertResult(source, target, quantization, vocab, size, seconds)


def convert_registry_models(
    models_dir: Path,
    specs: list[ModelSpec],
    *,
    quantization: str | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[ConvertResult]:
    """Convert every given registry model found in ``models_dir``; absent ones raise ConvertError.

    ``quantization`` defaults to each spec's own (``int8`` when the registry says ``none``).
    """
    from pipeline.translate.registry import model_folder

    results: list[ConvertResult] = []
    for spec in specs:
        q = quantization or (spec.quantization if spec.quantization != "none" else "int8")
        src = model_folder(models_dir, spec)
        dst = converted_folder(src, q)
        if not force and not check_converted_folder(dst):
            (progress or log.info)(f"{spec.pair}: {dst} already converted")
            continue
        results.append(convert_model(src, dst, q, progress=progress, force=True))
    return results
