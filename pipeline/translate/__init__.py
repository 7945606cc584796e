"""Translate stage: Hebrew and Arabic sentences to English; English passes through.

Cache first (by sentence hash and model), translate only the misses, once per distinct sentence.
A missing model leaves its segments pending with one warning; it never stops the run. Nothing heavy
is imported here: torch loads only when a sentence actually needs a model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.records import Segment, StageResult, Translation, sha256_text
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.translate.cache import TranslationCache
    from pipeline.translate.engines import Engine
    from pipeline.translate.registry import ModelSpec

__all__ = ["IDENTITY_MODEL_ID", "translate_segments"]

log = logging.getLogger(__name__)

IDENTITY_MODEL_ID = "identity"
PASSTHROUGH_LANGS: frozenset[str] = frozenset({"en"})
STAGE = "translate"


def _engine_for(spec: ModelSpec, settings: Settings, engines: dict[str, Engine]) -> Engine | None:
    """The engine for a model, loaded once per call; None (and one warning) when unusable."""
    from pipeline.translate.engines import EngineError, load_engine
    from pipeline.translate.registry import check_model_folder, describe_problems, model_folder

    if spec.src in engines:
        return engines[spec.src]
    folder = model_folder(settings.models_dir, spec)
    problems = check_model_folder(folder)
    if problems:
        log.warning("%s Its segments stay pending.", describe_problems(spec, folder, problems))
        return None
    try:
        engine = load_engine(spec, folder, settings.translate)
    except (EngineError, OSError, ValueError, RuntimeError) as exc:
        log.warning(
            "%s Its segments stay pending.",
            describe_problems(spec, folder, [f"loading failed: {exc}"]),
        )
        return None
    engines[spec.src] = engine
    return engine


def translate_segments(
    segments: list[Segment],
    settings: Settings,
    cache: TranslationCache | None,
    *,
    engines: dict[str, Engine] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Translation], StageResult]:
    """One Translation per English, Hebrew or Arabic segment that could be translated.

    Counts: passthrough (English), cache_hits, translated (distinct sentences sent to a model),
    deduplicated (repeats of a sentence translated in this call), pending (no usable model, or
    the engine failed), untranslatable (languages without a model). ``progress`` gets
    (sentences done, sentences to do) after each model's work.
    """
    started = time.monotonic()
    result = StageResult(STAGE)
    for key in ("passthrough", "cache_hits", "translated", "deduplicated", "pending"):
        result.counts[key] = 0
    result.counts["untranslatable"] = 0
    out: dict[tuple[str, int], Translation] = {}

    by_lang: dict[str, list[Segment]] = {}
    for seg in segments:
        if seg.lang in PASSTHROUGH_LANGS:
            out[(seg.article_id, seg.seg_no)] = Translation(
                article_id=seg.article_id,
                seg_no=seg.seg_no,
                model_id=IDENTITY_MODEL_ID,
                text_en=seg.text,
                source_sha256=sha256_text(seg.text),
                engine=IDENTITY_MODEL_ID,
            )
            result.add("passthrough")
        else:
            by_lang.setdefault(seg.lang, []).append(seg)

    registry: dict[str, ModelSpec] = {}
    if by_lang:
        from pipeline.translate.registry import load_registry

        registry = load_registry(settings.registry_path)
    live_engines: dict[str, Engine] = engines if engines is not None else {}
    todo = sum(len(v) for lang, v in by_lang.items() if lang in registry)
    done = 0

    for lang, segs in by_lang.items():
        spec = registry.get(lang)
        if spec is None:
            result.add("untranslatable", len(segs))
            continue
        hashes = [sha256_text(s.text) for s in segs]
        cached = cache.get_many(spec.hf_id, hashes) if cache is not None else {}
        texts: dict[str, str] = {}  # hash -> source text, distinct misses in first-seen order
        for seg, h in zip(segs, hashes, strict=True):
            if h not in cached:
                texts.setdefault(h, seg.text)

        # Blank sentences need no model (and would make one hallucinate).
        fresh: dict[str, str] = {h: "" for h, text in texts.items() if not text.strip()}
        texts = {h: text for h, text in texts.items() if h not in fresh}
        engine_name = settings.translate.engine
        engine = _engine_for(spec, settings, live_engines) if texts else None
        if engine is not None:
            engine_name = engine.engine_name
            try:
                english = engine.translate(list(texts.values()))
            except Exception:  # one model failing must not take down the batch
                log.exception("translation with %s failed; segments stay pending", spec.hf_id)
            else:
                fresh.update(zip(texts, english, strict=True))
                if cache is not None:
                    cache.put_many(
                        spec.hf_id,
                        [(h, texts[h], fresh[h]) for h in texts],
                        engine=engine_name,
                    )

        seen: set[str] = set()
        for seg, h in zip(segs, hashes, strict=True):
            if h in cached:
                text_en = cached[h]
                result.add("cache_hits")
            elif h in fresh:
                text_en = fresh[h]
                result.add("deduplicated" if h in seen else "translated")
                seen.add(h)
            else:
                result.add("pending")
                continue
            out[(seg.article_id, seg.seg_no)] = Translation(
                article_id=seg.article_id,
                seg_no=seg.seg_no,
                model_id=spec.hf_id,
                text_en=text_en,
                source_sha256=h,
                engine=engine_name,
                flagged="",
            )
        done += len(segs)
        if progress is not None:
            progress(done, todo)

    order = {(s.article_id, s.seg_no): n for n, s in enumerate(segments)}
    translations = sorted(out.values(), key=lambda t: order[(t.article_id, t.seg_no)])
    result.seconds = time.monotonic() - started
    log.info("translate: %s in %.1fs", result.counts, result.seconds)
    return translations, result
