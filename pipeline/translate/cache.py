"""Translation cache keyed by (sha256 of the source sentence, model id), in the warehouse.

A sentence repeated across articles, outlets or runs is translated once per model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import duckdb

_CHUNK = 1000  # keys per lookup query


class TranslationCache(Protocol):
    """What the translate stage needs from a cache (the warehouse table, or a staged snapshot)."""

    def get_many(self, model_id: str, hashes: list[str]) -> dict[str, str]: ...

    def put_many(self, model_id: str, rows: list[tuple[str, str, str]], engine: str) -> None: ...


class DuckDBTranslationCache:
    """Reads and fills the ``translation_cache`` table of an open DuckDB connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def get_many(self, model_id: str, hashes: list[str]) -> dict[str, str]:
        """English text for each cached source hash; hashes not cached are simply absent."""
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            rows = self.con.execute(
                "SELECT source_sha256, text_en FROM translation_cache "
                "WHERE model_id = ? AND list_contains(?, source_sha256)",
                [model_id, chunk],
            ).fetchall()
            found.update({h: text for h, text in rows})
        return found

    def put_many(self, model_id: str, rows: list[tuple[str, str, str]], engine: str) -> None:
        """Store (source_sha256, source_text, text_en) rows; an existing key keeps its first text.

        One set-based INSERT over column lists, not ``executemany``: inside a transaction DuckDB
        keeps every row-statement's state until commit (about 200 KB a row), so memory would
        grow with the backlog.
        """
        first: dict[str, tuple[str, str]] = {}
        for h, src, en in rows:
            first.setdefault(h, (src, en))  # one row per key: a statement may not hit a key twice
        if not first:
            return
        from pipeline.warehouse import merge_from

        # an empty answer an older version cached is replaced, never kept as "the first text"
        self.con.execute(
            "DELETE FROM translation_cache WHERE model_id = ? AND trim(text_en) = '' "
            "AND list_contains(?, source_sha256)",
            [model_id, list(first)],
        )

        merge_from(  # ON CONFLICT DO NOTHING, in a form a DuckLake (no keys) runs too
            self.con,
            "translation_cache",
            ["source_sha256", "model_id", "source_text", "text_en", "engine", "created_at"],
            "SELECT unnest(?::VARCHAR[]) AS source_sha256, ? AS model_id, "
            "unnest(?::VARCHAR[]) AS source_text, unnest(?::VARCHAR[]) AS text_en, "
            "? AS engine, current_timestamp AS created_at",
            [
                list(first),
                model_id,
                [src for src, _ in first.values()],
                [en for _, en in first.values()],
                engine,
            ],
            update=False,
        )


@dataclass(frozen=True)
class CacheRow:
    """One translation-cache entry (the cache table's natural key and its text)."""

    model_id: str
    source_sha256: str
    source_text: str
    text_en: str
    engine: str


class SnapshotCache:
    """A cache read before the models run: lookups answer from the snapshot and new entries are
    collected for a later write, so translating needs no open warehouse (the run's translate
    step and the Airflow translate task both use it)."""

    def __init__(self, known: Iterable[tuple[str, str, str]]) -> None:
        """`known`: (model_id, source_sha256, text_en) of the entries already stored."""
        self.known = {(m, h): en for m, h, en in known}
        self.new: list[CacheRow] = []

    def get_many(self, model_id: str, hashes: list[str]) -> dict[str, str]:
        return {h: self.known[(model_id, h)] for h in hashes if (model_id, h) in self.known}

    def put_many(self, model_id: str, rows: list[tuple[str, str, str]], engine: str) -> None:
        for h, src, en in rows:
            if not self.known.get((model_id, h), "").strip():  # new, or an old empty answer
                self.known[(model_id, h)] = en
                self.new.append(CacheRow(model_id, h, src, en, engine))

    def take_new(self) -> list[CacheRow]:
        """The entries added since the last call (each handed out once)."""
        taken, self.new = self.new, []
        return taken
