"""Filters shared by every search mode: document language, time window, outlet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class SearchFilters:
    langs: tuple[str, ...] = ()  # document languages; empty: all
    since: datetime | None = None  # published at or after
    until: datetime | None = None  # published before
    outlets: tuple[str, ...] = ()

    def sql(self, alias: str) -> tuple[str, list[Any]]:
        """` AND ...` conditions on the articles table under `alias`, and their parameters."""
        parts: list[str] = []
        params: list[Any] = []
        if self.langs:
            parts.append(f"{alias}.lang IN (SELECT unnest(?))")
            params.append(list(self.langs))
        if self.outlets:
            parts.append(f"{alias}.outlet_id IN (SELECT unnest(?))")
            params.append(list(self.outlets))
        if self.since is not None:
            parts.append(f"{alias}.published_at >= ?")
            params.append(self.since)
        if self.until is not None:
            parts.append(f"{alias}.published_at < ?")
            params.append(self.until)
        return "".join(f" AND {p}" for p in parts), params
