"""The model registry (models/registry.toml) and checks on the local copy of each model.

A model folder is what `parallax models download` leaves behind. Checking it without loading torch
lets a run with a missing or half-downloaded model say exactly what is wrong and how to fix it.
"""

from __future__ import annotations

import json
import struct
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

DOWNLOAD_COMMAND = "parallax models download"
MODELS_DIR_ENV = "PARALLAX_MODELS_DIR"

# Files every MarianMT folder needs, besides the weights.
REQUIRED_FILES: tuple[str, ...] = ("config.json", "source.spm", "target.spm", "vocab.json")
WEIGHT_FILES: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
OPTIONAL_FILES: tuple[str, ...] = (
    "generation_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
_FIELDS = ("pair", "src", "tgt", "hf_id", "revision", "engine", "quantization", "tier", "bleu")
DEFAULT_TIER = "default"
ENGINES: frozenset[str] = frozenset({"transformers", "ctranslate2"})


class RegistryError(ValueError):
    """The registry file is missing or malformed."""


@dataclass(frozen=True)
class ModelSpec:
    pair: str  # "he-en"
    src: str
    tgt: str
    hf_id: str  # "Helsinki-NLP/opus-mt-he-en"; also the model_id of its translations
    revision: str  # pinned commit sha (or a branch name until one is pinned)
    engine: str = "transformers"
    quantization: str = "none"
    tier: str = DEFAULT_TIER  # "default", or an opt-in tier such as "quality"
    bleu: str = ""  # published BLEU, as the model card gives it (test set and score)


def load_registry(path: Path, tier: str = DEFAULT_TIER) -> dict[str, ModelSpec]:
    """The registry's models of one tier, keyed by source language; a source language without
    a model in that tier keeps its default-tier model. A malformed entry is a clear error."""
    specs = load_registry_entries(path)
    chosen = {s.src: s for s in specs if s.tier == DEFAULT_TIER}
    if tier != DEFAULT_TIER:
        tiered = {s.src: s for s in specs if s.tier == tier}
        if not tiered:
            known = sorted({s.tier for s in specs})
            raise RegistryError(f"{path}: no models in tier {tier!r}; tiers: {known}")
        chosen.update(tiered)
    return chosen


def load_registry_entries(path: Path) -> list[ModelSpec]:
    """Every registry entry, all tiers, in file order."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise RegistryError(f"model registry not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"model registry {path} is not valid TOML: {exc}") from exc
    specs: dict[tuple[str, str], ModelSpec] = {}
    for n, entry in enumerate(data.get("model", [])):
        missing = [f for f in ("pair", "src", "tgt", "hf_id", "revision") if not entry.get(f)]
        unknown = sorted(set(entry) - set(_FIELDS))
        if missing or unknown:
            raise RegistryError(
                f"{path}: model entry {n} has missing {missing} / unknown {unknown} fields"
            )
        spec = ModelSpec(**{k: str(v) for k, v in entry.items()})
        if spec.engine not in ENGINES:
            raise RegistryError(f"{path}: {spec.pair}: unknown engine {spec.engine!r}")
        if (spec.src, spec.tier) in specs:
            raise RegistryError(
                f"{path}: two models for source language {spec.src!r} in tier {spec.tier!r}"
            )
        specs[(spec.src, spec.tier)] = spec
    return list(specs.values())


def model_folder(models_dir: Path, spec: ModelSpec) -> Path:
    """Where the local copy of a model lives: one folder per hub id, "/" turned into "--"."""
    return models_dir / spec.hf_id.replace("/", "--")


def _check_json(path: Path) -> str | None:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return f"{path.name} is not valid JSON ({exc.__class__.__name__}: {exc})"
    return None


def _check_spm(path: Path) -> str | None:
    import sentencepiece as spm  # light C extension; only needed when a folder is checked

    try:
        spm.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as exc:
        return f"{path.name} is not a sentencepiece model ({exc})"
    return None


def _check_safetensors(path: Path) -> str | None:
    """Parse the header and check the file is as long as the tensors it declares (truncation)."""
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            if header_len > size - 8:
                return f"{path.name} is truncated (header larger than file)"
            header = json.loads(fh.read(header_len))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        return f"{path.name} has an unreadable header ({exc.__class__.__name__})"
    ends = [
        t["data_offsets"][1]
        for name, t in header.items()
        if name != "__metadata__" and isinstance(t, dict) and "data_offsets" in t
    ]
    if ends and max(ends) > size - 8 - header_len:
        return f"{path.name} is truncated ({size} bytes, tensors need {8 + header_len + max(ends)})"
    return None


def _check_torch_bin(path: Path) -> str | None:
    if not zipfile.is_zipfile(path):
        return f"{path.name} is truncated or not a torch checkpoint"
    return None


def check_model_folder(path: Path) -> list[str]:
    """What is missing or corrupt in a model folder; an empty list means it looks loadable."""
    if not path.is_dir():
        return [f"model folder {path} does not exist"]
    problems: list[str] = []
    for name in REQUIRED_FILES:
        file = path / name
        if not file.is_file():
            problems.append(f"missing {name}")
        elif file.stat().st_size == 0:
            problems.append(f"{name} is empty (0 bytes)")
        else:
            problem = _check_json(file) if name.endswith(".json") else _check_spm(file)
            if problem:
                problems.append(problem)
    weights = [path / w for w in WEIGHT_FILES if (path / w).is_file()]
    if not weights:
        problems.append(f"missing weights ({' or '.join(WEIGHT_FILES)})")
    for file in weights:
        if file.stat().st_size == 0:
            problems.append(f"{file.name} is empty (0 bytes)")
            continue
        check = _check_safetensors if file.suffix == ".safetensors" else _check_torch_bin
        problem = check(file)
        if problem:
            problems.append(problem)
    # huggingface_hub leaves *.incomplete files behind when a download is interrupted.
    partial = sorted(p.name for p in (path / ".cache").rglob("*.incomplete"))
    if partial:
        problems.append(f"interrupted download ({len(partial)} partial files)")
    return problems


def folder_size(path: Path) -> int:
    """Bytes on disk under a folder (0 when absent), the hub's bookkeeping excluded."""
    if not path.is_dir():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and ".cache" not in p.parts)


def describe_problems(spec: ModelSpec, folder: Path, problems: list[str]) -> str:
    """One line a user can act on: which model, what is wrong, which command fixes it."""
    return (
        f"model {spec.hf_id} ({spec.pair}) is not usable at {folder}: {'; '.join(problems)}. "
        f"Run `{DOWNLOAD_COMMAND}` to fetch it, or point {MODELS_DIR_ENV} at a folder that has it."
    )
