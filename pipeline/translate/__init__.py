"""Translate stage: Hebrew and Arabic sentences to English; English passes through.

Cache first (by sentence hash and model), translate only the misses, once per distinct sentence,
in chunks so memory stays flat on a large backlog; every output goes through the trust guard
(a degenerate one is retried with beam search, then flagged). A missing model or converted copy
leaves its segments pending with one warning; it never stops the run. Nothing heavy is imported
here: torch or ctranslate2 load only when a sentence actually needs a model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipeline.records import Segment, StageResult, Translation, sha256_text
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.translate.cache import TranslationCache
    from pipeline.translate.engines import Engine
    from pipeline.translate.meta import TranslationMeta
    from pipeline.translate.registry import ModelSpec

__all__ = ["CHUNK_SENTENCES", "IDENTITY_MODEL_ID", "translate_segments"]

log = logging.getLogger(__name__)

IDENTITY_MODEL_ID = "identity"
PASSTHROUGH_LANGS: frozenset[str] = frozenset({"en"})
STAGE = "translate"
CHUNK_SENTENCES = 2048  # distinct sentences per chunk (look-up, engine call, rows): bounds memory


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
    except EngineError as exc:  # engine unknown, or no converted copy: the message names the fix
        log.warning("%s Its segments stay pending.", exc)
        return None
    except (OSError, ValueError, RuntimeError) as exc:
        log.warning(
            "%s Its segments stay pending.",
            describe_problems(spec, folder, [f"loading failed: {exc}"]),
        )
        return None
    engines[spec.src] = engine
    return engine


def _options(
    engine: Engine | None, engine_name: str, settings: Settings, num_beams: int | None
) -> dict[str, Any]:
    from pipeline.translate.engines import decoding_options

    opts = getattr(engine, "options", None)
    if callable(opts):
        return dict(opts(num_beams))
    return decoding_options(engine_name, settings.translate, num_beams=num_beams)


class EngineOutputError(ValueError):
    """An engine answered with the wrong number of outputs, or a non-text (None, NaN) one."""


def _checked(texts: list[str], outputs: list[Any]) -> list[str]:
    if len(outputs) != len(texts):
        raise EngineOutputError(f"{len(outputs)} outputs for {len(texts)} sentences")
    bad = [i for i, o in enumerate(outputs) if not isinstance(o, str)]
    if bad:
        raise EngineOutputError(f"non-text output {outputs[bad[0]]!r} for sentence {bad[0]}")
    return outputs


def _translate_chunk(
    engine: Engine, texts: dict[str, str], result: StageResult, retry_beams: int
) -> tuple[dict[str, str], dict[str, str], set[str]]:
    """English and guard flag per hash; the hashes retried with beam search."""
    from pipeline.translate.guard import check_translation

    sources = list(texts.values())
    english = dict(zip(texts, _checked(sources, engine.translate(sources)), strict=True))
    flags = {h: check_translation(texts[h], english[h]) for h in texts}
    suspect = [h for h, f in flags.items() if f]
    if not suspect or retry_beams <= 0:
        return english, flags, set()
    result.add("retried", len(suspect))
    started = time.monotonic()
    again = [texts[h] for h in suspect]
    retried = _checked(again, engine.translate(again, num_beams=retry_beams))
    result.add("retry_ms", int((time.monotonic() - started) * 1000))
    for h, text in zip(suspect, retried, strict=True):
        english[h] = text
        flags[h] = check_translation(texts[h], text)
    return english, flags, set(suspect)


def _translate_isolating(
    engine: Engine, texts: dict[str, str], result: StageResult, retry_beams: int
) -> tuple[dict[str, str], dict[str, str], set[str], dict[str, str]]:
    """`_translate_chunk`, but a failure splits the batch in halves until the sentences the
    engine cannot handle are alone: those come back in the last dict (hash -> error), the
    rest of the batch is translated as usual."""
    try:
        english, flags, retried = _translate_chunk(engine, texts, result, retry_beams)
        return english, flags, retried, {}
    except Exception as exc:  # any engine failure: isolate it rather than lose the batch
        if len(texts) == 1:
            return {}, {}, set(), {h: f"{type(exc).__name__}: {exc}"[:300] for h in texts}
        log.debug("engine failed on %d sentences (%s); splitting the batch", len(texts), exc)
    keys = list(texts)
    english, flags, retried, failed = {}, {}, set(), {}
    for half in (keys[: len(keys) // 2], keys[len(keys) // 2 :]):
        e, f, r, bad = _translate_isolating(
            engine, {h: texts[h] for h in half}, result, retry_beams
        )
        english.update(e)
        flags.update(f)
        retried |= r
        failed.update(bad)
    return english, flags, retried, failed


def _record(
    seg: Segment,
    spec: ModelSpec,
    text_en: str,
    h: str,
    engine: str,
    flag: str,
    meta: TranslationMeta,
) -> Translation:
    values: dict[str, Any] = {
        "article_id": seg.article_id,
        "seg_no": seg.seg_no,
        "model_id": spec.hf_id,
        "text_en": text_en,
        "source_sha256": h,
        "engine": engine,
        "flagged": flag,
        "revision": meta.revision,
        "decoding": meta.decoding,
    }
    return Translation(**values)


def _metas(
    engine: Engine | None, engine_name: str, spec: ModelSpec, settings: Settings
) -> dict[str, TranslationMeta]:
    """Reproducibility metadata per kind of row: new, retried with beam search, from the cache."""
    from pipeline.translate.meta import TranslationMeta, decoding_json

    base = _options(engine, engine_name, settings, None)
    retry = _options(engine, engine_name, settings, settings.translate.retry_beams)
    return {
        "new": TranslationMeta(spec.hf_id, spec.revision, engine_name, decoding_json(base)),
        "retry": TranslationMeta(
            spec.hf_id, spec.revision, engine_name, decoding_json({**retry, "retry": True})
        ),
        "cached": TranslationMeta(
            spec.hf_id, spec.revision, engine_name, decoding_json({**base, "cached": True})
        ),
    }


def translate_segments(
    segments: list[Segment],
    settings: Settings,
    cache: TranslationCache | None,
    *,
    engines: dict[str, Engine] | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_chunk: Callable[[list[Translation]], None] | None = None,
) -> tuple[list[Translation], StageResult]:
    """One Translation per English, Hebrew or Arabic segment that could be translated.

    Counts: passthrough (English), cache_hits, translated (distinct sentences sent to a model),
    deduplicated (repeats of a sentence translated in this call), pending (no usable model, or
    the engine failed), failed (segments whose sentence the engine raised on, answered with a
    non-text or returned nothing for, even after the beam-search retry: they stay pending, are
    not cached, and are listed in ``result.rejects``), untranslatable (languages without a model), retried (sentences the guard
    sent back for beam search), flagged (rows whose translation the guard flags, cached or new),
    retry_ms (milliseconds spent on those retries).
    Work goes in chunks of at most CHUNK_SENTENCES distinct sentences: cache look-up, decoding,
    guard, cache fill and rows, one chunk at a time. ``progress`` gets (segments done, segments
    to do) after each chunk. With ``on_chunk``, each chunk's rows go to it as soon as they exist
    (e.g. to load them into the warehouse) and the returned list is empty, so memory stays flat
    however large the backlog; without it, all rows come back in input order. Each non-identity
    row carries its model revision, engine and decoding options, so it can be reproduced.
    """
    started = time.monotonic()
    result = StageResult(STAGE)
    for key in ("passthrough", "cache_hits", "translated", "deduplicated", "pending"):
        result.counts[key] = 0
    result.counts["untranslatable"] = 0
    result.counts["retried"] = 0
    result.counts["flagged"] = 0
    result.counts["retry_ms"] = 0  # time spent on guard retries (beam search)
    collected: list[Translation] = []
    emit: Callable[[list[Translation]], None] = on_chunk or collected.extend

    by_lang: dict[str, list[Segment]] = {}
    passthrough: list[Translation] = []
    for seg in segments:
        if seg.lang not in PASSTHROUGH_LANGS:
            by_lang.setdefault(seg.lang, []).append(seg)
            continue
        passthrough.append(
            Translation(
                article_id=seg.article_id,
                seg_no=seg.seg_no,
                model_id=IDENTITY_MODEL_ID,
                text_en=seg.text,
                source_sha256=sha256_text(seg.text),
                engine=IDENTITY_MODEL_ID,
            )
        )
        result.add("passthrough")
        if len(passthrough) >= CHUNK_SENTENCES:
            emit(passthrough)
            passthrough = []
    if passthrough:
        emit(passthrough)

    registry: dict[str, ModelSpec] = {}
    if by_lang:
        from pipeline.translate.registry import load_registry

        registry = load_registry(settings.registry_path, settings.translate.tier)
    live_engines: dict[str, Engine] = engines if engines is not None else {}
    todo = sum(len(v) for lang, v in by_lang.items() if lang in registry)
    done = 0
    for lang, segs in by_lang.items():
        spec = registry.get(lang)
        if spec is None:
            result.add("untranslatable", len(segs))
            continue
        done = _translate_language(
            segs, spec, settings, cache, live_engines, result, emit, (done, todo), progress
        )

    if on_chunk is None:
        order = {(s.article_id, s.seg_no): n for n, s in enumerate(segments)}
        collected.sort(key=lambda t: order[(t.article_id, t.seg_no)])
    result.seconds = time.monotonic() - started
    log.info("translate: %s in %.1fs", result.counts, result.seconds)
    return collected, result


def _record_failures(
    failed: dict[str, str], groups: dict[str, list[Segment]], spec: ModelSpec, result: StageResult
) -> None:
    """Sentences the engine could not translate stay pending (no row) and are flagged as
    rejects with reason `translation_failed`, one per segment, so they can be found and retried."""
    from pipeline.records import Reject

    for h, error in failed.items():
        log.warning("%s failed on a sentence (%s); it stays pending", spec.hf_id, error)
        result.add("failed", len(groups[h]))
        result.rejects.extend(
            Reject(STAGE, "", f"segment:{seg.article_id}#{seg.seg_no}", "translation_failed", error)
            for seg in groups[h]
        )


def _translate_language(
    segs: list[Segment],
    spec: ModelSpec,
    settings: Settings,
    cache: TranslationCache | None,
    engines: dict[str, Engine],
    result: StageResult,
    emit: Callable[[list[Translation]], None],
    position: tuple[int, int],
    progress: Callable[[int, int], None] | None,
) -> int:
    """One language's segments, chunk by chunk of distinct sentences; returns segments done."""
    from pipeline.translate.engines import engine_name_for
    from pipeline.translate.guard import check_translation

    done, todo = position
    groups: dict[str, list[Segment]] = {}  # hash -> its segments, first-seen order
    for seg in segs:
        groups.setdefault(sha256_text(seg.text), []).append(seg)
    hashes = list(groups)
    engine_name = engine_name_for(spec, settings.translate)
    engine: Engine | None = None
    tried = False  # the engine is loaded (or found unusable) once, at the first cache miss
    metas = _metas(None, engine_name, spec, settings)
    for start in range(0, len(hashes), CHUNK_SENTENCES):
        chunk = hashes[start : start + CHUNK_SENTENCES]
        sources = {h: groups[h][0].text for h in chunk}
        cached = cache.get_many(spec.hf_id, chunk) if cache is not None else {}
        # an empty answer for a real sentence is a failure, not a translation: ask again
        cached = {h: t for h, t in cached.items() if t.strip() or not sources[h].strip()}
        english: dict[str, str] = {}
        kinds: dict[str, str] = {h: "cached" for h in cached}
        flags = {h: check_translation(sources[h], cached[h]) for h in cached}
        for h in chunk:  # blank sentences need no model (and would make one hallucinate)
            if h not in cached and not sources[h].strip():
                english[h], kinds[h], flags[h] = "", "new", ""
        misses = {h: sources[h] for h in chunk if h not in cached and h not in english}
        if misses and not tried:
            tried = True
            engine = _engine_for(spec, settings, engines)
            if engine is not None:
                engine_name = engine.engine_name
                metas = _metas(engine, engine_name, spec, settings)
        if misses and engine is not None:
            new, new_flags, retried, failed = _translate_isolating(
                engine, misses, result, settings.translate.retry_beams
            )
            for h in [h for h, flag in new_flags.items() if flag == "empty"]:
                del new[h], new_flags[h]  # empty even after the retry: pending, not stored
                failed[h] = "EngineOutputError: empty output for a non-empty sentence"
            english.update(new)
            flags.update(new_flags)
            kinds.update({h: "retry" if h in retried else "new" for h in new})
            if cache is not None and new:
                cache.put_many(
                    spec.hf_id, [(h, misses[h], new[h]) for h in new], engine=engine_name
                )
            if failed:
                _record_failures(failed, groups, spec, result)
            if failed and not new:  # nothing got through: the model is broken, not a sentence
                log.error(
                    "translation with %s failed on every sentence; the rest stay pending",
                    spec.hf_id,
                )
                engine = None
        rows: list[Translation] = []
        for h in chunk:
            group = groups[h]
            done += len(group)
            if h in cached:
                text_en = cached[h]
                result.add("cache_hits", len(group))
            elif h in english:
                text_en = english[h]
                result.add("translated")
                result.add("deduplicated", len(group) - 1)
            else:
                result.add("pending", len(group))
                continue
            if flags[h]:
                result.add("flagged", len(group))
            meta = metas[kinds[h]]
            rows.extend(
                _record(seg, spec, text_en, h, engine_name, flags[h], meta) for seg in group
            )
        if rows:
            emit(rows)
        if progress is not None:
            progress(done, todo)
    return done
