"""Per event, a hash of everything its report page and index row are built from, read in one
set-based query so a refresh knows which events moved without loading any of them.

The hash covers the event row (label, span, languages), each member's article row and outlet
(name, group, language), its segments' texts, every translation row (English, model, flag,
time) and the event's links and differences (their counts, and the `link_state` fingerprint that
names what they were computed from). The query scans those tables' columns once (a columnar
aggregate: well under a second at 100,000 articles), where loading every event's statements to
compare whole page models took minutes on a long history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

_INPUTS = """
WITH sg AS (
    SELECT article_id, count(*) AS n, bit_xor(hash(seg_no, para_no, lang, text)) AS h
    FROM segments GROUP BY article_id
), tr AS (
    SELECT article_id, count(*) AS n,
           bit_xor(hash(seg_no, model_id, text_en, flagged, created_at)) AS h
    FROM translations GROUP BY article_id
), lk AS (
    SELECT event_id, count(*) AS n FROM segment_links GROUP BY event_id
), dv AS (
    SELECT event_id, count(*) AS n FROM divergences GROUP BY event_id
), members AS (
    SELECT ea.event_id,
           md5(string_agg(concat_ws('|', ea.article_id, a.version, a.text_sha256, a.title,
                                    a.url, a.published_at, a.lang, a.outlet_id, o.name,
                                    o.outlet_group, o.lang, sg.n, sg.h, tr.n, tr.h),
                          ',' ORDER BY ea.article_id)) AS h
    FROM event_articles ea
    JOIN articles a USING (article_id)
    LEFT JOIN outlets o ON o.outlet_id = a.outlet_id
    LEFT JOIN sg USING (article_id)
    LEFT JOIN tr USING (article_id)
    GROUP BY ea.event_id
)
SELECT e.event_id, e.last_seen, e.langs,
       md5(concat_ws('|', e.label, e.first_seen, e.last_seen, e.langs::VARCHAR, m.h,
                     coalesce(lk.n, 0), coalesce(dv.n, 0), ls.fingerprint))
FROM events e
LEFT JOIN members m USING (event_id)
LEFT JOIN lk USING (event_id)
LEFT JOIN dv USING (event_id)
LEFT JOIN link_state ls USING (event_id)
"""


@dataclass(frozen=True)
class EventInputs:
    event_id: str
    last_seen: datetime | None
    langs: tuple[str, ...]
    digest: str  # changes whenever anything on the event's page or index row may change


def event_inputs(con: duckdb.DuckDBPyConnection) -> list[EventInputs]:
    """Every event's input digest, in event_id order."""
    return [
        EventInputs(event_id, last_seen, tuple(langs or ()), digest)
        for event_id, last_seen, langs, digest in con.execute(
            _INPUTS + " ORDER BY e.event_id"
        ).fetchall()
    ]
