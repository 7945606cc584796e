"""Translation engines behind one small interface: sentences in, English out, same order.

``MarianEngine`` runs a MarianMT folder with transformers (the reference); ``CTranslate2Engine``
runs the converted copy of the same model (int8 on CPU, float16 on CUDA: the fast path). Both use
the folder's ``MarianTokenizer``, so they see identical source pieces. Sentences longer than the
model's position limit are split at clause boundaries and their pieces' translations joined.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from pipeline.settings import TranslateSettings
from pipeline.translate.registry import ModelSpec

log = logging.getLogger(__name__)

ENGINE_NAMES: tuple[str, ...] = ("transformers", "ctranslate2")


class EngineError(RuntimeError):
    """An engine could not be loaded or asked for is not available."""


class Engine(Protocol):
    model_id: str  # registry hf_id: the model_id of every translation it makes
    engine_name: str  # "transformers", "ctranslate2"

    def translate(self, sentences: list[str], *, num_beams: int | None = None) -> list[str]:
        """English per sentence, in order; ``num_beams`` overrides the settings (guard retry)."""
        ...


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


def decoding_options(
    engine_name: str, settings: TranslateSettings, *, num_beams: int | None = None, **extra: Any
) -> dict[str, Any]:
    """The options that decide a translation, as recorded with each row to reproduce it."""
    beams = max(1, num_beams if num_beams is not None else settings.num_beams)
    opts: dict[str, Any] = {
        "engine": engine_name,
        "num_beams": beams,
        "length_penalty": settings.length_penalty if beams > 1 else 1.0,
        "max_new_tokens": settings.max_new_tokens,
        "max_length_factor": settings.max_length_factor,
    }
    opts.update(extra)
    return opts


def decoding_cap(longest_source: int, settings: TranslateSettings, min_new_tokens: int = 0) -> int:
    """Most target tokens for a batch whose longest source has ``longest_source`` pieces.

    ``max_length_factor`` × source length (+4), as Marian's ``--max-length-factor``: a sentence
    that never emits ``</s>`` stops there instead of holding its batch to ``max_new_tokens``.
    """
    cap = max(1, settings.max_new_tokens)
    if settings.max_length_factor > 0:
        cap = min(cap, int(settings.max_length_factor * longest_source) + 4)
    return max(cap, min_new_tokens)


def _load_tokenizer(folder: Path, spec: ModelSpec) -> Any:
    from transformers import MarianTokenizer

    with warnings.catch_warnings():
        # MarianTokenizer suggests sacremoses for punctuation normalisation; optional.
        warnings.filterwarnings("ignore", message=".*sacremoses.*")
        return MarianTokenizer.from_pretrained(
            str(folder), local_files_only=True, source_lang=spec.src, target_lang=spec.tgt
        )


def split_for_model(
    sentences: list[str], token_counts: Sequence[int], max_tokens: int
) -> tuple[list[str], list[list[int]]]:
    """Pieces short enough for the model, and for each sentence the indices of its pieces.

    A sentence over ``max_tokens`` is cut at clause boundaries (``segment.split_long``) with a
    character budget scaled from its own characters-per-token, with a margin.
    """
    from pipeline.segment.sentences import split_long

    pieces: list[str] = []
    owners: list[list[int]] = []
    for text, n in zip(sentences, token_counts, strict=True):
        parts = [text]
        if n > max_tokens and text.strip():
            budget = max(1, int(len(text) * max_tokens / n * 0.8))
            parts = split_long(text, budget) or [text]
        owners.append(list(range(len(pieces), len(pieces) + len(parts))))
        pieces.extend(parts)
    return pieces, owners


def _translate_split(
    sentences: list[str],
    count_tokens: Callable[[list[str]], list[int]],
    max_tokens: int,
    run: Callable[[list[str]], list[str]],
) -> list[str]:
    """Split over-long sentences, translate all pieces in one go, join each sentence's pieces."""
    if not sentences:
        return []
    counts = count_tokens(sentences)
    if all(n <= max_tokens for n in counts):
        return run(sentences)
    pieces, owners = split_for_model(sentences, counts, max_tokens)
    english = run(pieces)
    return [" ".join(english[i] for i in idx if english[i]).strip() for idx in owners]


class _SplittingEngine:
    """What both Marian engines share: the MarianTokenizer's token counts, and translation with
    over-long sentences split under the model's position limit (their pieces joined again)."""

    tokenizer: Any
    max_input_tokens: int

    def count_tokens(self, sentences: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(sentences, truncation=False)["input_ids"]]

    def _run(self, sentences: list[str], num_beams: int | None) -> list[str]:
        raise NotImplementedError

    def translate(self, sentences: list[str], *, num_beams: int | None = None) -> list[str]:
        """English for each sentence, in the caller's order."""
        return _translate_split(
            sentences,
            self.count_tokens,
            self.max_input_tokens,
            lambda batch: self._run(batch, num_beams),
        )


class MarianEngine(_SplittingEngine):
    """MarianMT with transformers, from a local folder only (never the hub)."""

    engine_name = "transformers"

    def __init__(
        self, folder: Path, spec: ModelSpec, settings: TranslateSettings, device: str = "cpu"
    ) -> None:
        import torch
        from transformers import MarianMTModel

        if settings.torch_threads > 0:
            torch.set_num_threads(settings.torch_threads)
        self.model_id = spec.hf_id
        self.revision = spec.revision
        self.folder = folder
        self.settings = settings
        self.device = device
        self.tokenizer = _load_tokenizer(folder, spec)
        self.model = MarianMTModel.from_pretrained(str(folder), local_files_only=True)
        if device.startswith("cuda"):
            self.model = self.model.half().to(device)
        self.model.eval()
        self.compute_type = "float16" if device.startswith("cuda") else "float32"
        positions = int(getattr(self.model.config, "max_position_embeddings", 512))
        self.max_input_tokens = min(positions, int(self.tokenizer.model_max_length or positions))
        log.info("loaded %s from %s (max %d input tokens)", spec.hf_id, folder, positions)

    def options(self, num_beams: int | None = None) -> dict[str, Any]:
        return decoding_options(
            self.engine_name, self.settings, num_beams=num_beams, compute_type=self.compute_type
        )

    def generate_ids(
        self,
        sentences: list[str],
        *,
        num_beams: int | None = None,
        min_new_tokens: int = 0,
        forced_eos: bool = True,
    ) -> list[list[int]]:
        """Target token ids per sentence (no start, special tokens kept), in the caller's order.

        ``forced_eos=False`` stops transformers from replacing the last token with ``</s>`` when
        ``max_new_tokens`` is reached, as CTranslate2 does not: only then are the two comparable
        token for token on outputs that hit the length limit.
        """
        import torch

        lengths = [min(n, self.max_input_tokens) for n in self.count_tokens(sentences)]
        out: list[list[int]] = [[] for _ in sentences]
        s = self.settings
        beams = max(1, num_beams if num_beams is not None else s.num_beams)
        for batch in plan_batches(lengths, max(1, s.batch_size), max(1, s.max_batch_tokens)):
            inputs = self.tokenizer(
                [sentences[i] for i in batch],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_input_tokens,
            ).to(self.model.device)
            kwargs: dict[str, Any] = {
                "max_new_tokens": decoding_cap(max(lengths[i] for i in batch), s, min_new_tokens),
                "num_beams": beams,
                "do_sample": False,
            }
            if min_new_tokens:
                kwargs["min_new_tokens"] = min_new_tokens
            if beams > 1:
                kwargs["length_penalty"] = s.length_penalty
            saved = self.model.generation_config.forced_eos_token_id
            if not forced_eos:  # generate() fills a None kwarg from here, so unset it here
                self.model.generation_config.forced_eos_token_id = None
            try:
                with torch.inference_mode():
                    generated = self.model.generate(**inputs, **kwargs)
            finally:
                self.model.generation_config.forced_eos_token_id = saved
            pad = self.model.config.pad_token_id
            for i, row in zip(batch, generated.tolist(), strict=True):
                ids = row[1:]  # drop the decoder start token
                while ids and ids[-1] == pad:
                    ids.pop()
                out[i] = ids
        return out

    def _run(self, sentences: list[str], num_beams: int | None) -> list[str]:
        ids = self.generate_ids(sentences, num_beams=num_beams)
        return [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]


def ct2_device() -> str:
    """``cuda`` when CTranslate2 sees a GPU, else ``cpu``."""
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


class CTranslate2Engine(_SplittingEngine):
    """The CTranslate2 copy of a MarianMT model; tokenised by the original folder's tokenizer."""

    engine_name = "ctranslate2"

    def __init__(
        self,
        ct2_folder: Path,
        hf_folder: Path,
        spec: ModelSpec,
        settings: TranslateSettings,
        *,
        device: str = "auto",
        compute_type: str = "",
        use_vmap: bool = False,
    ) -> None:
        import json

        self.model_id = spec.hf_id
        self.revision = spec.revision
        self.folder = ct2_folder
        self.settings = settings
        self.device = ct2_device() if device == "auto" else device
        if not compute_type:
            q = spec.quantization if spec.quantization not in ("", "none") else "float32"
            compute_type = "float16" if self.device == "cuda" else q
        self.compute_type = compute_type
        self.tokenizer = _load_tokenizer(hf_folder, spec)
        self.use_vmap = use_vmap  # decode with the vocabulary map beside the model (shortlist)
        self.vmap_sha256 = ""
        self.reload()
        cfg = json.loads((hf_folder / "config.json").read_text(encoding="utf-8"))
        positions = int(cfg.get("max_position_embeddings", 512))
        self.max_input_tokens = min(positions, int(self.tokenizer.model_max_length or positions))
        log.info(
            "loaded %s (CTranslate2 %s on %s, %d×%d threads) from %s",
            spec.hf_id,
            compute_type,
            self.device,
            settings.inter_threads,
            settings.intra_threads,
            ct2_folder,
        )

    def reload(self) -> None:
        """(Re)load the converted model; CTranslate2 reads ``vmap.txt`` only at load time."""
        import ctranslate2

        from pipeline.translate.shortlist import map_sha256

        s = self.settings
        self.translator = ctranslate2.Translator(
            str(self.folder),
            device=self.device,
            compute_type=self.compute_type,
            inter_threads=max(1, s.inter_threads),
            intra_threads=max(0, s.intra_threads),
        )
        self.vmap_sha256 = map_sha256(self.folder)
        if self.use_vmap and not self.vmap_sha256:
            raise EngineError(f"use_vmap asked for, but {self.folder} has no vmap.txt")

    def options(self, num_beams: int | None = None) -> dict[str, Any]:
        extra: dict[str, Any] = {"use_vmap": self.use_vmap}
        if self.use_vmap:  # which shortlist: a row can be reproduced only with the same map
            extra["vmap_sha256"] = self.vmap_sha256[:16]
        return decoding_options(
            self.engine_name,
            self.settings,
            num_beams=num_beams,
            compute_type=self.compute_type,
            max_batch_tokens=self.settings.max_batch_tokens,
            batch_size=self.settings.batch_size,
            **extra,
        )

    def source_pieces(self, sentences: list[str]) -> list[list[str]]:
        """Source pieces per sentence as the model sees them (ending in ``</s>``)."""
        encoded = self.tokenizer(sentences, truncation=True, max_length=self.max_input_tokens)[
            "input_ids"
        ]
        return [self.tokenizer.convert_ids_to_tokens(ids) for ids in encoded]

    def target_vocabulary(self) -> frozenset[str]:
        import json

        vocab = json.loads((self.folder / "shared_vocabulary.json").read_text(encoding="utf-8"))
        return frozenset(vocab)

    def generate_tokens(
        self,
        sentences: list[str],
        *,
        num_beams: int | None = None,
        min_new_tokens: int = 0,
        use_vmap: bool | None = None,
    ) -> list[list[str]]:
        """Target pieces per sentence (no ``</s>``), in the caller's order.

        Batches of similar source length (``plan_batches``: at most ``batch_size`` sentences and
        ``max_batch_tokens`` padded tokens), each with its own length cap (``decoding_cap``).
        """
        if not sentences:
            return []
        s = self.settings
        beams = max(1, num_beams if num_beams is not None else s.num_beams)
        source = self.source_pieces(sentences)
        lengths = [len(p) for p in source]
        pending = []  # every batch submitted at once: inter_threads batches run in parallel
        for batch in plan_batches(lengths, max(1, s.batch_size), max(1, s.max_batch_tokens)):
            cap = decoding_cap(max(lengths[i] for i in batch), s, min_new_tokens)
            results = self.translator.translate_batch(
                [source[i] for i in batch],
                asynchronous=True,
                beam_size=beams,
                length_penalty=s.length_penalty if beams > 1 else 1.0,
                max_decoding_length=cap,
                min_decoding_length=min_new_tokens,
                use_vmap=self.use_vmap if use_vmap is None else use_vmap,
                return_scores=False,
            )
            pending.append((batch, results))
        out: list[list[str]] = [[] for _ in sentences]
        for batch, results in pending:
            for i, r in zip(batch, results, strict=True):
                out[i] = r.result().hypotheses[0]
        return out

    def decode(self, tokens: list[list[str]]) -> list[str]:
        """English text from target pieces."""
        ids = [self.tokenizer.convert_tokens_to_ids(t) for t in tokens]
        return [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def _run(self, sentences: list[str], num_beams: int | None) -> list[str]:
        return self.decode(self.generate_tokens(sentences, num_beams=num_beams))


def engine_name_for(spec: ModelSpec, settings: TranslateSettings) -> str:
    """The engine a pair runs with: the settings' (and so ``--engine``), else the registry's."""
    return settings.engine or spec.engine


def _convert_on_first_use(folder: Path, ct2: Path, quantization: str) -> list[str]:
    """Make the CTranslate2 copy now (once; it stays beside the model). Returns what's still
    wrong, e.g. when the models folder is read-only."""
    from pipeline.translate.convert import ConvertError, convert_model

    log.info("no CTranslate2 copy at %s: converting %s once (%s)", ct2, folder.name, quantization)
    try:
        convert_model(folder, ct2, quantization)
    except (ConvertError, OSError, RuntimeError) as exc:
        return [f"automatic conversion failed: {exc}"]
    return []


def _vmap_allowed(ct2: Path, spec: ModelSpec, settings: TranslateSettings) -> bool:
    """Whether the shortlist beside ``ct2`` passed its recorded check; one log line either way."""
    from pipeline.translate.shortlist import vmap_status

    status = vmap_status(ct2, settings.vmap_min_chrf, spec.pair)
    if status.usable:
        log.info("%s: %s", spec.pair, status.reason)
    else:
        log.warning("%s: %s", spec.pair, status.reason)
    return status.usable


def load_engine(spec: ModelSpec, folder: Path, settings: TranslateSettings) -> Engine:
    """The engine the settings (or, when they say "", the registry) ask for, from ``folder``.

    For ``ctranslate2`` the converted copy beside ``folder`` must exist; when it does not, this
    raises EngineError naming `parallax models convert`.
    """
    from pipeline.translate.convert import (
        check_converted_folder,
        converted_folder,
        describe_missing_conversion,
    )

    name = engine_name_for(spec, settings)
    if name == "transformers":
        return MarianEngine(folder, spec, settings)
    if name == "ctranslate2":
        q = spec.quantization if spec.quantization not in ("", "none") else "int8"
        ct2 = converted_folder(folder, q)
        problems = check_converted_folder(ct2)
        if problems and settings.auto_convert:
            problems = _convert_on_first_use(folder, ct2, q)
        if problems:
            raise EngineError(describe_missing_conversion(spec, ct2, problems))
        device = ct2_device()
        return CTranslate2Engine(
            ct2,
            folder,
            spec,
            settings,
            device=device,
            compute_type="float16" if device == "cuda" else q,
            use_vmap=settings.use_vmap and _vmap_allowed(ct2, spec, settings),
        )
    raise EngineError(f"unknown translation engine {name!r}; one of {list(ENGINE_NAMES)}")
