"""Batches of records handed from one Airflow task to the next as JSONL files.

DuckDB lets one process write the warehouse at a time, so parallel tasks write their output here
and only load tasks (in a one-slot pool) write the warehouse. A file is named by run, task,
outlet and try number, and appears atomically (temporary file + rename), so a retried or cleared
task never mixes its output with an earlier attempt's and a load never reads half a file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
import types
import typing
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

SUFFIX = ".jsonl"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class StagingError(ValueError):
    """A staged file or record that cannot be written or read back faithfully."""


def safe_name(value: str) -> str:
    """A file-name-safe form of a run id or outlet id, with a short hash so distinct ids stay distinct."""
    cleaned = _UNSAFE.sub("_", value).strip("._") or "x"
    if cleaned == value:
        return value
    return f"{cleaned[:80]}-{hashlib.sha256(value.encode('utf-8')).hexdigest()[:8]}"


def run_dir(staging_dir: Path, dag_id: str, run_id: str) -> Path:
    """The folder holding every batch one DAG run staged."""
    return Path(staging_dir) / safe_name(dag_id) / safe_name(run_id)


def batch_path(
    staging_dir: Path,
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    kind: str,
    try_number: int,
    key: str = "",
) -> Path:
    """Where one try of one task (of one mapped outlet, `key`) stages records of one kind."""
    parts = [safe_name(task_id)]
    if key:
        parts.append(safe_name(key))
    parts += [f"try{int(try_number)}", safe_name(kind)]
    return run_dir(staging_dir, dag_id, run_id) / (".".join(parts) + SUFFIX)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise StagingError(
                f"naive datetime {value.isoformat()} cannot be staged; use UTC-aware"
            )
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def _record_dict(record: Any) -> dict[str, Any]:
    if not dataclasses.is_dataclass(record) or isinstance(record, type):
        raise StagingError(f"only dataclass records can be staged, got {type(record).__name__}")
    return {f.name: _encode(getattr(record, f.name)) for f in dataclasses.fields(record)}


def write_batch(path: Path, records: Iterable[Any]) -> int:
    """Write records as JSON lines, atomically: readers see the whole file or none. Returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            for record in records:
                fh.write(json.dumps(_record_dict(record), ensure_ascii=False, sort_keys=True))
                fh.write("\n")
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.debug("staged %d records in %s", count, path)
    return count


def _decoder(hint: Any) -> Any:
    """A function turning a JSON value back into the field's declared type."""
    origin = typing.get_origin(hint)
    if hint is datetime:
        return _parse_datetime
    if origin is typing.Union or origin is types.UnionType:
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(inner) == 1:
            dec = _decoder(inner[0])
            return lambda v: None if v is None else dec(v)
        return lambda v: v
    if origin is tuple:
        args = typing.get_args(hint)
        item = _decoder(args[0]) if args else (lambda v: v)
        return lambda v: tuple(item(x) for x in v)
    if origin is list:
        args = typing.get_args(hint)
        item = _decoder(args[0]) if args else (lambda v: v)
        return lambda v: [item(x) for x in v]
    return lambda v: v


def _parse_datetime(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise StagingError(f"staged datetime {value!r} has no timezone")
    return parsed


def read_batch(path: Path, cls: type[T]) -> list[T]:
    """Records of dataclass `cls` from a file `write_batch` wrote, datetimes timezone-aware."""
    if not dataclasses.is_dataclass(cls):
        raise StagingError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    decoders = {f.name: _decoder(hints[f.name]) for f in dataclasses.fields(cls)}
    out: list[T] = []
    with Path(path).open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                values = {name: decoders[name](v) for name, v in raw.items() if name in decoders}
                out.append(cls(**values))
            except (ValueError, TypeError, KeyError) as exc:
                raise StagingError(f"{path}:{line_no}: not a {cls.__name__} record: {exc}") from exc
    return out
