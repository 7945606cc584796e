"""Reproducibility metadata of translation rows: model, revision, engine and decoding options.

Every translation row records what made it (``warehouse/003_translation_meta.sql`` adds the
``revision`` and ``decoding`` columns), so any row can be reproduced with the same weights and
options, carried on :class:`~pipeline.records.Translation` into the warehouse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

MetaKey = tuple[str, int, str]  # (article_id, seg_no, model_id): the translations primary key


@dataclass(frozen=True)
class TranslationMeta:
    model_id: str
    revision: str
    engine: str
    decoding: str  # JSON object of the decoding options (sorted keys)


def decoding_json(options: dict[str, Any]) -> str:
    """Options as a canonical JSON string (sorted keys), so equal options compare equal."""
    return json.dumps(options, sort_keys=True, ensure_ascii=False)
