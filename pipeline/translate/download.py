"""Fetch registry models into the models folder (`parallax models download`) and list them.

The only code that talks to the model hub. It asks the hub once, with a short timeout, before
downloading, so an unreachable hub is a one-line failure in seconds rather than minutes of
retries, and it never reports an old local copy as a fresh download.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.settings import Settings
from pipeline.translate.registry import (
    DOWNLOAD_COMMAND,
    OPTIONAL_FILES,
    REQUIRED_FILES,
    WEIGHT_FILES,
    ModelSpec,
    check_model_folder,
    folder_size,
    load_registry,
    load_registry_entries,
    model_folder,
)

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class DownloadResult:
    pair: str
    hf_id: str
    folder: Path
    ok: bool
    message: str  # one line: what happened, or why not
    commit: str = ""  # the commit the hub resolved the pinned revision to
    skipped: bool = False  # quick mode: the folder was already complete
    seconds: float = 0.0


@dataclass(frozen=True)
class ModelStatus:
    pair: str
    hf_id: str
    revision: str
    engine: str
    quantization: str
    folder: Path
    present: bool  # folder complete and loadable-looking
    size_bytes: int
    problems: tuple[str, ...] = ()
    tier: str = "default"
    bleu: str = ""  # published BLEU from the model card
    active: bool = True  # the tier translations use now (translate.tier)


def hub_endpoint() -> str:
    """The hub to talk to: HF_ENDPOINT when set (a mirror), else huggingface_hub's default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _select_specs(settings: Settings, pairs: list[str] | None) -> list[ModelSpec]:
    specs = list(load_registry(settings.registry_path, settings.translate.tier).values())
    if pairs is None:
        return specs
    known = {s.pair for s in specs}
    unknown = sorted(set(pairs) - known)
    if unknown:
        raise ValueError(f"no registry entry for {unknown}; known pairs: {sorted(known)}")
    return [s for s in specs if s.pair in pairs]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}".rstrip(": ")


def _silent_tqdm() -> type:
    from tqdm.auto import tqdm

    class _Silent(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return _Silent


def _download_one(spec: ModelSpec, folder: Path, endpoint: str, progress: bool) -> DownloadResult:
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    started = time.monotonic()

    def result(ok: bool, message: str, commit: str = "") -> DownloadResult:
        return DownloadResult(
            spec.pair, spec.hf_id, folder, ok, message, commit, False, time.monotonic() - started
        )

    api = HfApi(endpoint=endpoint)
    try:  # one short request first: is the hub there, which files (sizes, hashes) are there?
        info = api.model_info(
            spec.hf_id, revision=spec.revision, timeout=PROBE_TIMEOUT_S, files_metadata=True
        )
    except HfHubHTTPError as exc:  # the hub answered: unknown repo or revision, auth, outage
        return result(False, f"{endpoint} refused {spec.hf_id}@{spec.revision}: {_one_line(exc)}")
    except Exception as exc:  # connection refused, timeout, offline mode, proxy...
        return result(False, f"cannot reach {endpoint} for {spec.hf_id}: {_one_line(exc)}")
    files = {s.rfilename for s in (info.siblings or [])}
    weights = next((w for w in WEIGHT_FILES if w in files), None)
    if weights is None:
        return result(False, f"{spec.hf_id}@{spec.revision} has no {' or '.join(WEIGHT_FILES)}")
    missing = [f for f in REQUIRED_FILES if f not in files]
    if missing:
        return result(False, f"{spec.hf_id}@{spec.revision} lacks {missing}: not a MarianMT repo")
    wanted = [*REQUIRED_FILES, weights, *(f for f in OPTIONAL_FILES if f in files)]
    commit = info.sha or spec.revision
    try:
        snapshot_download(
            spec.hf_id,
            revision=commit,
            local_dir=folder,
            allow_patterns=wanted,
            endpoint=endpoint,
            tqdm_class=None if progress else _silent_tqdm(),
        )
    except Exception as exc:
        return result(False, f"download of {spec.hf_id} failed: {_one_line(exc)}", commit)
    mismatches = verify_files(folder, {s.rfilename: s for s in info.siblings or []}, wanted)
    if mismatches:
        return result(
            False,
            f"{spec.hf_id}@{commit[:12]} does not match the hub's record: {'; '.join(mismatches)}"
            f" (delete {folder} and run `{DOWNLOAD_COMMAND}` again)",
            commit,
        )
    problems = check_model_folder(folder)
    if problems:
        return result(False, f"{spec.hf_id} downloaded but unusable: {'; '.join(problems)}", commit)
    return result(
        True, f"{spec.hf_id}@{commit[:12]} -> {folder} (sizes and hashes verified)", commit
    )


def _file_digests(path: Path) -> tuple[str, str]:
    """sha256 of the file, and git's blob id (sha1 of "blob <size>\0" + content)."""
    import hashlib

    sha256 = hashlib.sha256()
    blob = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha256.update(chunk)
            blob.update(chunk)
    return sha256.hexdigest(), blob.hexdigest()


def verify_files(folder: Path, siblings: dict[str, Any], names: list[str]) -> list[str]:
    """Each downloaded file against the hub's record of it: size, and the LFS sha256 (weights,
    sentencepiece models) or the git blob id (small files). Returns the mismatches."""
    problems = []
    for name in names:
        record, path = siblings.get(name), folder / name
        if record is None or not path.is_file():
            continue
        lfs = getattr(record, "lfs", None)
        size = lfs.size if lfs else getattr(record, "size", None)
        if size is not None and path.stat().st_size != size:
            problems.append(f"{name} has {path.stat().st_size} bytes, the hub says {size}")
            continue
        sha256, blob_id = _file_digests(path)
        if lfs and lfs.sha256 and lfs.sha256 != sha256:
            problems.append(f"{name} sha256 {sha256[:12]}…, the hub says {lfs.sha256[:12]}…")
        elif not lfs and getattr(record, "blob_id", None) and record.blob_id != blob_id:
            problems.append(f"{name} blob {blob_id[:12]}…, the hub says {record.blob_id[:12]}…")
    return problems


def download_models(
    settings: Settings,
    *,
    pairs: list[str] | None = None,
    quick: bool = False,
    progress: bool = True,
) -> list[DownloadResult]:
    """Download each registry model (or those of ``pairs``) into ``settings.models_dir``.

    ``quick`` skips models whose folder already passes :func:`check_model_folder`, without asking
    the hub. Failures come back as results with ``ok=False`` and a one-line message; nothing raises
    for an unreachable hub or a missing repository.
    """
    from huggingface_hub import constants

    specs = _select_specs(settings, pairs)
    endpoint = hub_endpoint()
    results: list[DownloadResult] = []
    for spec in specs:
        folder = model_folder(settings.models_dir, spec)
        if quick and not check_model_folder(folder):
            results.append(
                DownloadResult(spec.pair, spec.hf_id, folder, True, "already present", skipped=True)
            )
            continue
        if constants.is_offline_mode():
            results.append(
                DownloadResult(
                    spec.pair,
                    spec.hf_id,
                    folder,
                    False,
                    f"HF_HUB_OFFLINE is set: unset it to run `{DOWNLOAD_COMMAND}`",
                )
            )
            continue
        res = _download_one(spec, folder, endpoint, progress)
        (log.info if res.ok else log.warning)("%s: %s", spec.pair, res.message)
        results.append(res)
    return results


def list_models(settings: Settings, *, all_tiers: bool = False) -> list[ModelStatus]:
    """Every registry model (of the active tier, or of all tiers) with whether its local
    folder is complete, and its size."""
    active = load_registry(settings.registry_path, settings.translate.tier)
    specs = load_registry_entries(settings.registry_path) if all_tiers else list(active.values())
    statuses = []
    for spec in specs:
        folder = model_folder(settings.models_dir, spec)
        problems = check_model_folder(folder)
        statuses.append(
            ModelStatus(
                pair=spec.pair,
                hf_id=spec.hf_id,
                revision=spec.revision,
                engine=spec.engine,
                quantization=spec.quantization,
                folder=folder,
                present=not problems,
                size_bytes=folder_size(folder),
                problems=tuple(problems),
                tier=spec.tier,
                bleu=spec.bleu,
                active=active.get(spec.src) == spec,
            )
        )
    return statuses
