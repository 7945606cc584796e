"""Translation engines behind one small interface: sentences in, English out, same order.

MarianEngine runs a MarianMT folder with transformers. A CTranslate2 engine (a converted, int8
copy of the same model) plugs in behind the same protocol through :func:`load_engine`.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.settings import TranslateSettings
from pipeline.translate.registry import ModelSpec

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """An engine could not be loaded or asked for is not available."""


class Engine(Protocol):
    model_id: str  # registry hf_id: the model_id of every translation it makes
    engine_name: str  # "transformers", "ctranslate2"

    def translate(self, sentences: list[str]) -> list[str]: ...


def plan_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first.

    A batch holds at most ``batch_size`` sentences and, padded to its longest member, at most
    ``max_batch_tokens`` tokens (a single longer sentence still gets a batch of its own).
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        width = max(longest, lengths[i])
        if current and (
            len(current) >= batch_size or width * (len(current) + 1) > max_batch_tokens
        ):
            batches.append(current)
            current, width = [], lengths[i]
        current.append(i)
        longest = width
    if current:
        batches.append(current)
    return batches


class MarianEngine:
    """MarianMT with transformers, from a local folder only (never the hub)."""

    engine_name = "transformers"

    def __init__(self, folder: Path, spec: ModelSpec, settings: TranslateSettings) -> None:
        import torch
        from transformers import MarianMTModel, MarianTokenizer

        if settings.torch_threads > 0:
            torch.set_num_threads(settings.torch_threads)
        self.model_id = spec.hf_id
        self.folder = folder
        self.settings = settings
        with warnings.catch_warnings():
            # MarianTokenizer suggests sacremoses for punctuation normalisation; optional.
            warnings.filterwarnings("ignore", message=".*sacremoses.*")
            self.tokenizer = MarianTokenizer.from_pretrained(
                str(folder), local_files_only=True, source_lang=spec.src, target_lang=spec.tgt
            )
        self.model = MarianMTModel.from_pretrained(str(folder), local_files_only=True)
        self.model.eval()
        positions = int(getattr(self.model.config, "max_position_embeddings", 512))
        self.max_input_tokens = min(positions, int(self.tokenizer.model_max_length or positions))
        log.info("loaded %s from %s (max %d input tokens)", spec.hf_id, folder, positions)

    def translate(self, sentences: list[str]) -> list[str]:
        """English for each sentence, in the caller's order; batches sorted by token length."""
        import torch

        if not sentences:
            return []
        lengths = [
            min(len(ids), self.max_input_tokens)
            for ids in self.tokenizer(sentences, truncation=False)["input_ids"]
        ]
        out: list[str] = [""] * len(sentences)
        s = self.settings
        for batch in plan_batches(lengths, max(1, s.batch_size), max(1, s.max_batch_tokens)):
            inputs = self.tokenizer(
                [sentences[i] for i in batch],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_input_tokens,
            )
            kwargs: dict[str, Any] = {
                "max_new_tokens": s.max_new_tokens,
                "num_beams": max(1, s.num_beams),
                "do_sample": False,
            }
            if s.num_beams > 1:
                kwargs["length_penalty"] = s.length_penalty
            with torch.inference_mode():
                generated = self.model.generate(**inputs, **kwargs)
            texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
            for i, text in zip(batch, texts, strict=True):
                out[i] = text.strip()
        return out


def load_engine(spec: ModelSpec, folder: Path, settings: TranslateSettings) -> Engine:
    """The engine the settings ask for, loaded from ``folder``."""
    if settings.engine == "transformers":
        return MarianEngine(folder, spec, settings)
    if settings.engine == "ctranslate2":
        raise EngineError(
            "the ctranslate2 engine is not available yet; set translate.engine = 'transformers'"
        )
    raise EngineError(f"unknown translation engine {settings.engine!r}")
