"""Translation quality on a source/reference file: BLEU and chrF per language pair and engine.

`parallax eval translation --pairs FILE.tsv`. The file is UTF-8, tab-separated, with a header row
``src_lang<TAB>source<TAB>reference`` (extra columns are ignored) and one sentence pair per line,
for example ``he<TAB>הממשלה אישרה את התקציב.<TAB>The government approved the budget.``. Each
engine translates through the normal stage (no cache, so every engine really decodes), and
sacrebleu scores the corpus of each (language, engine).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.records import Segment
from pipeline.settings import Settings

log = logging.getLogger(__name__)

HEADER: tuple[str, ...] = ("src_lang", "source", "reference")


class PairsFileError(ValueError):
    """The pairs file is missing, has no header, or has malformed rows."""


@dataclass(frozen=True)
class TranslationScore:
    pair: str  # "he-en"
    engine: str
    sentences: int  # pairs in the file for this language
    translated: int  # of those, translated (the rest were pending: no usable model)
    bleu: float | None  # None when nothing was translated
    chrf: float | None
    flagged: int  # translations the guard flagged
    seconds: float


def read_pairs(path: Path) -> list[tuple[str, str, str]]:
    """(src_lang, source, reference) rows; a missing column or empty field is a clear error."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            missing = [c for c in HEADER if c not in (reader.fieldnames or [])]
            if missing:
                raise PairsFileError(
                    f"{path}: header must name {'/'.join(HEADER)} (tab-separated); lacks {missing}"
                )
            rows = []
            for n, row in enumerate(reader, start=2):
                values = tuple((row.get(c) or "").strip() for c in HEADER)
                if not all(values):
                    raise PairsFileError(f"{path}:{n}: empty {HEADER[values.index('')]}")
                rows.append((values[0], values[1], values[2]))
    except FileNotFoundError as exc:
        raise PairsFileError(f"pairs file not found: {path}") from exc
    except UnicodeDecodeError as exc:
        raise PairsFileError(f"{path} is not UTF-8: {exc}") from exc
    return rows


def evaluate_translation(
    pairs_tsv: Path,
    settings: Settings,
    engines: tuple[str, ...] = ("ctranslate2", "transformers"),
) -> list[TranslationScore]:
    """One score row per (language pair, engine), in file language order then engine order."""
    import sacrebleu

    from pipeline.translate import translate_segments
    from pipeline.translate.registry import load_registry

    rows = read_pairs(pairs_tsv)
    registry = load_registry(settings.registry_path, settings.translate.tier)
    langs = list(dict.fromkeys(lang for lang, _, _ in rows))
    scores: list[TranslationScore] = []
    for engine in engines:
        run = replace(settings, translate=replace(settings.translate, engine=engine))
        for lang in langs:
            mine = [(src, ref) for lg, src, ref in rows if lg == lang]
            pair = registry[lang].pair if lang in registry else f"{lang}-en"
            segs = [Segment(f"eval-{lang}", n, 0, src, lang) for n, (src, _) in enumerate(mine)]
            out, result = translate_segments(segs, run, None)
            by_no = {t.seg_no: t for t in out}
            hyps = [by_no[n].text_en for n in range(len(mine)) if n in by_no]
            refs = [ref for n, (_, ref) in enumerate(mine) if n in by_no]
            bleu = sacrebleu.corpus_bleu(hyps, [refs]).score if hyps else None
            chrf = sacrebleu.corpus_chrf(hyps, [refs]).score if hyps else None
            scores.append(
                TranslationScore(
                    pair=pair,
                    engine=engine,
                    sentences=len(mine),
                    translated=len(hyps),
                    bleu=bleu,
                    chrf=chrf,
                    flagged=sum(1 for t in out if t.flagged),
                    seconds=result.seconds,
                )
            )
            log.info("eval %s %s: %s", pair, engine, scores[-1])
    return scores
