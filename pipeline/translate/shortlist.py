"""Lexical shortlists: CTranslate2 vocabulary maps built from the model's own translations.

Most of a Marian decoder step is the output projection over the whole target vocabulary (33M of
the ~57M multiply-adds per token for OPUS-MT he-en's 64,001 entries). A shortlist restricts that
projection to the target pieces a batch can plausibly need: the most frequent pieces always,
plus the pieces the model itself produced next to each source piece. CTranslate2 reads it as
``vmap.txt`` beside the converted model (``translate_batch(..., use_vmap=True)``).

A shortlist trades exactness for speed, so it is only used with a recorded check: a held-back
sample translated both ways (full vocabulary and shortlist), with exact-match rate and chrF
between the two written to ``vmap.check.json`` beside the map. The stage refuses a map without
a check, with a check of another map, or with chrF below ``translate.vmap_min_chrf``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.translate.engines import CTranslate2Engine

log = logging.getLogger(__name__)

VMAP_FILE = "vmap.txt"  # the name CTranslate2 looks for in a model folder
CHECK_FILE = "vmap.check.json"
SHORTLIST_COMMAND = "parallax models shortlist"
DEFAULT_SIZE = 2000  # most frequent target pieces, always candidates
DEFAULT_PER_SOURCE = 20  # target pieces seen with each source piece
_SPECIAL = frozenset({"</s>", "<unk>", "<pad>", "<s>"})


class ShortlistError(ValueError):
    """A shortlist cannot be built (no sentences, no converted model)."""


@dataclass(frozen=True)
class VocabularyMap:
    always: list[str]  # candidates for every batch, most frequent first
    by_source: dict[str, list[str]]  # source piece -> extra target candidates

    def candidates(self, source: Iterable[str]) -> set[str]:
        """Target pieces allowed for a sentence (CTranslate2 adds </s>, <unk> and <s>)."""
        allowed = set(self.always)
        for piece in source:
            allowed.update(self.by_source.get(piece, ()))
        return allowed

    def to_text(self) -> str:
        """``vmap.txt``: a line with an empty key (always on), then ``source<TAB>targets``."""
        lines = ["\t" + " ".join(self.always)]
        lines += [f"{s}\t{' '.join(t)}" for s, t in sorted(self.by_source.items()) if t]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ShortlistCheck:
    """Agreement of shortlisted with full-vocabulary output on a held-back sample."""

    map_sha256: str
    model_id: str
    compute_type: str
    sentences: int
    exact_match: float  # share of sentences with identical text
    chrf: float  # sacrebleu chrF of shortlisted against full output, 0..1
    full_seconds: float
    vmap_seconds: float
    built_from: str
    size: int
    per_source: int
    held_back: bool  # False when the sample was too small to hold sentences back
    created_at: str


@dataclass(frozen=True)
class VmapStatus:
    usable: bool
    reason: str  # one line: why the map is (not) used
    map_sha256: str = ""


def build_vocabulary_map(
    pairs: Iterable[tuple[Sequence[str], Sequence[str]]],
    *,
    size: int = DEFAULT_SIZE,
    per_source: int = DEFAULT_PER_SOURCE,
    target_vocab: frozenset[str] | None = None,
) -> VocabularyMap:
    """The map from (source pieces, target pieces) of full-vocabulary translations.

    Always on: the ``size`` most frequent target pieces. Per source piece: the ``per_source``
    target pieces most often in the same translation that are not always on (on a tie the rarer
    piece overall, the more specific one), plus the piece itself when the target vocabulary has
    it (numbers and names are copied).
    """
    freq: Counter[str] = Counter()
    seen: dict[str, Counter[str]] = {}
    for source, target in pairs:
        tgt = {t for t in target if t not in _SPECIAL}
        freq.update(t for t in target if t not in _SPECIAL)
        for s in {p for p in source if p not in _SPECIAL}:
            seen.setdefault(s, Counter()).update(tgt)
    always = [t for t, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[: max(0, size)]]
    on = set(always)
    by_source: dict[str, list[str]] = {}
    for s, counts in seen.items():
        ranked = sorted((t for t in counts if t not in on), key=lambda t: (-counts[t], freq[t], t))
        extra = ranked[: max(0, per_source)]
        if (target_vocab is None or s in target_vocab) and s not in on and s not in extra:
            extra.append(s)
        by_source[s] = extra
    return VocabularyMap(always, by_source)


def map_sha256(folder: Path) -> str:
    path = folder / VMAP_FILE
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def install_map(folder: Path, vmap: VocabularyMap) -> str:
    """Write ``vmap.txt`` into a converted model folder (atomically); returns its sha256.

    A check recorded for an earlier map no longer applies, so it is removed.
    """
    text = vmap.to_text()
    tmp = folder / (VMAP_FILE + ".partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(folder / VMAP_FILE)
    (folder / CHECK_FILE).unlink(missing_ok=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_check(folder: Path) -> ShortlistCheck | None:
    path = folder / CHECK_FILE
    if not path.is_file():
        return None
    try:
        return ShortlistCheck(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError):
        return None


def write_check(folder: Path, check: ShortlistCheck) -> None:
    (folder / CHECK_FILE).write_text(json.dumps(asdict(check), indent=1) + "\n", encoding="utf-8")


def vmap_status(folder: Path, min_chrf: float, pair: str = "") -> VmapStatus:
    """Whether the map beside a converted model may be used, and one line saying why (not)."""
    fix = f"run `{SHORTLIST_COMMAND}{' --pair ' + pair if pair else ''} --check`"
    sha = map_sha256(folder)
    if not sha:
        return VmapStatus(False, f"no shortlist at {folder / VMAP_FILE}: {fix}")
    check = read_check(folder)
    if check is None:
        return VmapStatus(False, f"shortlist {folder / VMAP_FILE} has no recorded check: {fix}")
    if check.map_sha256 != sha:
        return VmapStatus(False, f"the recorded check is of another shortlist: {fix}")
    if check.chrf < min_chrf:
        return VmapStatus(
            False,
            f"shortlist refused: its chrF against full-vocabulary output is {check.chrf:.3f} "
            f"(exact match {check.exact_match:.1%} on {check.sentences} sentences), below "
            f"translate.vmap_min_chrf = {min_chrf:.3f}; translating with the full vocabulary",
        )
    return VmapStatus(
        True,
        f"shortlist used: chrF {check.chrf:.3f}, exact match {check.exact_match:.1%} "
        f"on {check.sentences} held-back sentences",
        sha,
    )


def split_held_back(sentences: list[str], every: int = 10) -> tuple[list[str], list[str]]:
    """(to build from, held back): every ``every``-th sentence is held back for the check."""
    if len(sentences) < every:
        return sentences, []
    build = [s for i, s in enumerate(sentences) if i % every != every - 1]
    held = [s for i, s in enumerate(sentences) if i % every == every - 1]
    return build, held


def check_agreement(full: list[str], short: list[str]) -> tuple[float, float]:
    """(exact-match rate, chrF 0..1) of shortlisted output against full-vocabulary output."""
    import sacrebleu

    if not full:
        return 1.0, 1.0
    exact = sum(a == b for a, b in zip(full, short, strict=True)) / len(full)
    chrf = sacrebleu.corpus_chrf(short, [full]).score / 100.0
    return exact, chrf


@dataclass(frozen=True)
class ShortlistResult:
    folder: Path
    sentences: int  # distinct sentences the map was built from
    always: int
    source_pieces: int
    map_sha256: str
    seconds: float
    check: ShortlistCheck | None


def build_shortlist(
    engine: CTranslate2Engine,
    sentences: Iterable[str],
    *,
    size: int = DEFAULT_SIZE,
    per_source: int = DEFAULT_PER_SOURCE,
    check: bool = True,
    built_from: str = "",
    max_check: int = 500,
) -> ShortlistResult:
    """Translate the sentences with the full vocabulary, build and install the map, check it.

    One sentence in ten is held back (when there are ten or more) and, with ``check``, translated
    with the full vocabulary and with the new map; the agreement is recorded beside the map.
    """
    started = time.monotonic()
    distinct = list(dict.fromkeys(s.strip() for s in sentences if s.strip()))
    if not distinct:
        raise ShortlistError("no sentences to build a shortlist from")
    build, held = split_held_back(distinct)
    held = held[:max_check]
    source = engine.source_pieces(build)
    target = engine.generate_tokens(build, use_vmap=False)
    vmap = build_vocabulary_map(
        zip(source, target, strict=True),
        size=size,
        per_source=per_source,
        target_vocab=engine.target_vocabulary(),
    )
    sha = install_map(engine.folder, vmap)
    engine.reload()  # CTranslate2 reads vmap.txt when the model loads
    result_check: ShortlistCheck | None = None
    if check:
        sample = held or build[:max_check]
        full, full_s = _timed_text(engine, sample, use_vmap=False)
        short, short_s = _timed_text(engine, sample, use_vmap=True)
        exact, chrf = check_agreement(full, short)
        result_check = ShortlistCheck(
            map_sha256=sha,
            model_id=engine.model_id,
            compute_type=engine.compute_type,
            sentences=len(sample),
            exact_match=exact,
            chrf=chrf,
            full_seconds=full_s,
            vmap_seconds=short_s,
            built_from=built_from,
            size=size,
            per_source=per_source,
            held_back=bool(held),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        write_check(engine.folder, result_check)
    return ShortlistResult(
        engine.folder,
        len(build),
        len(vmap.always),
        len(vmap.by_source),
        sha,
        time.monotonic() - started,
        result_check,
    )


def _timed_text(
    engine: CTranslate2Engine, sentences: list[str], *, use_vmap: bool
) -> tuple[list[str], float]:
    started = time.perf_counter()
    text = engine.decode(engine.generate_tokens(sentences, use_vmap=use_vmap))
    return text, time.perf_counter() - started
