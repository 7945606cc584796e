"""Values stated in ORIGINAL Hebrew, Arabic and English sentences: durations, counts, money, ...

Outlets that disagree on a figure ("ארבעה שבועות" vs "four months") are the comparison users
want most, and machine translation may be pending or poor, so values are read from the original
text. The reader is rule-based: a token scanner over a normalised copy of the sentence (Arabic-
Indic digits to ASCII, Arabic diacritics and tatweel dropped, alef/yaa forms unified) that keeps a
map back to the original's character offsets, so every value carries its original span.

Kinds and normalised units:
- duration: days (hour = 1/24, week = 7, month = 30, year = 365), "four weeks" -> 28.0 "day";
  Hebrew and Arabic duals (שבועיים, أسبوعين) count as two.
- percent: "%"; count: "killed" / "wounded" / "people"; money: "USD" / "EUR" / "ILS";
- date: day and month, "mmdd" (1112 for 12 November), or "yyyymmdd" when a year follows;
- number: a bare numeral written in digits (number WORDS without a unit are skipped: "one
  official said" is not a figure).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

KINDS: tuple[str, ...] = ("duration", "count", "percent", "date", "money", "number", "name")


@dataclass(frozen=True)
class Value:
    kind: str  # one of KINDS
    value: float  # normalised: days for durations, plain number otherwise
    unit: str  # "day", "%", "killed", "USD", "mmdd", "" for a bare number
    start: int  # character offsets of the span in the ORIGINAL sentence
    end: int
    text: str  # the original span


# ---------------------------------------------------------------- normalisation

_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹٫٬", "01234567890123456789.,")
_ARABIC_MARKS = re.compile(r"[\u064b-\u065f\u0670\u0640\u0610-\u061a\u05b0-\u05c7]")
_LETTER_MAP = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "״": '"', "׳": "'"})


def normalise(text: str) -> tuple[str, list[int]]:
    """Normalised text and, for each of its characters, the index of the original character."""
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        if _ARABIC_MARKS.match(ch):
            continue
        ch = unicodedata.normalize("NFKC", ch) if ch in "％＄" else ch
        ch = ch.translate(_DIGITS).translate(_LETTER_MAP).lower()
        for c in ch:
            out.append(c)
            index.append(i)
    return "".join(out), index


def _words(spaced: str) -> list[str]:
    return spaced.split()


def _norm(word: str) -> str:
    return normalise(word)[0]


def _table(entries: dict[float, str]) -> dict[str, float]:
    return {_norm(w): v for v, words in entries.items() for w in words.split()}


# ---------------------------------------------------------------- lexicon

# Units (1-19) and tens; "ten" words also close a teen after a unit (ארבעה עשר, أربعة عشر).
_UNITS = _table(
    {
        0: "zero",
        1: "one אחד אחת واحد واحدة احد احدى",
        2: "two שניים שתיים שני שתי שתים اثنان اثنين اثنتين اثنتان اثنا اثني",
        3: "three שלושה שלוש שלושת שלשה ثلاثة ثلاث",
        4: "four ארבעה ארבע ארבעת أربعة أربع",
        5: "five חמישה חמש חמשת خمسة خمس",
        6: "six שישה שש ששת ستة ست",
        7: "seven שבעה שבע שבעת سبعة سبع",
        8: "eight שמונה שמונת ثمانية ثماني ثمان",
        9: "nine תשעה תשע תשעת تسعة تسع",
        10: "ten",
        11: "eleven",
        12: "twelve",
        13: "thirteen",
        14: "fourteen",
        15: "fifteen",
        16: "sixteen",
        17: "seventeen",
        18: "eighteen",
        19: "nineteen",
    }
)
_TEN_WORDS = frozenset(_norm(w) for w in _words("עשרה עשר עשרת عشرة عشر"))
_TENS = _table(
    {
        20: "twenty עשרים عشرون عشرين",
        30: "thirty שלושים ثلاثون ثلاثين",
        40: "forty ארבעים أربعون أربعين",
        50: "fifty חמישים خمسون خمسين",
        60: "sixty שישים ستون ستين",
        70: "seventy שבעים سبعون سبعين",
        80: "eighty שמונים ثمانون ثمانين",
        90: "ninety תשעים تسعون تسعين",
    }
)
_HUNDREDS = _table(
    {
        100: "hundred מאה مئة مائة",
        200: "מאתיים مئتان مئتين مائتان مائتين",
        300: "ثلاثمئة ثلاثمائة",
        400: "أربعمئة أربعمائة",
        500: "خمسمئة خمسمائة",
        600: "ستمئة ستمائة",
        700: "سبعمئة سبعمائة",
        800: "ثمانمئة ثمانمائة",
        900: "تسعمئة تسعمائة",
    }
)
_HUNDRED_TIMES = frozenset(_norm(w) for w in _words("hundred מאות مئة مائة"))
_SCALES = _table(
    {
        1e3: "thousand אלף אלפים ألف آلاف الاف ألفا",
        2e3: "אלפיים ألفين ألفان",
        1e6: "million millions מיליון מיליונים مليون ملايين",
        1e9: "billion bn מיליארד מיליארדים مليار مليارات",
    }
)
_SCALES_ABS = frozenset(_norm(w) for w in _words("אלפיים ألفين ألفان"))

_DURATION = _table(
    {
        1 / 24: "hour hours שעה שעות ساعة ساعات",
        1: "day days יום ימים يوم أيام يوما",
        7: "week weeks שבוע שבועות أسبوع أسابيع أسبوعا",
        30: "month months חודש חודשים شهر أشهر شهور شهرا",
        365: "year years שנה שנים سنة سنوات أعوام عام عاما سنين",
    }
)
# Duals: the word itself says "two".
_DUALS = _table(
    {
        2 / 24: "שעתיים ساعتين ساعتان",
        2: "יומיים يومين يومان",
        14: "שבועיים أسبوعين أسبوعان",
        60: "חודשיים شهرين شهران",
        730: "שנתיים سنتين سنتان عامين عامان",
    }
)
_PERCENT_WORDS = frozenset(_norm(w) for w in _words("percent אחוז אחוזים بالمئة بالمائة"))
_PERCENT_PHRASES = frozenset(
    (_norm(a), _norm(b)) for a, b in (("per", "cent"), ("في", "المئة"), ("في", "المائة"))
)
_CURRENCY = {
    **{_norm(w): "USD" for w in _words("dollar dollars usd דולר דולרים دولار دولارا دولارات")},
    **{_norm(w): "EUR" for w in _words("euro euros eur יורו يورو")},
    **{_norm(w): "ILS" for w in _words('shekel shekels nis שקל שקלים ש"ח شيكل شواكل')},
}
_CURRENCY_SIGNS = {"$": "USD", "€": "EUR", "₪": "ILS"}
_CASUALTY = {
    **{
        _norm(w): "killed"
        for w in _words(
            "killed dead deaths died killing fatalities הרוגים הרוגות נהרגו נהרג הרוג "
            "מתים قتلى قتيلا قتيل شهداء شهيدا مقتل استشهاد قتل"
        )
    },
    **{
        _norm(w): "wounded"
        for w in _words(
            "wounded injured injuries hurt פצועים פצועות נפצעו פצוע جرحى جريحا "
            "مصابين مصابا اصابة اصابات"
        )
    },
}
_PEOPLE = frozenset(
    _norm(w)
    for w in _words(
        "people persons civilians residents palestinians israelis children displaced "
        "איש אנשים תושבים אזרחים ילדים פלסטינים עקורים ישראלים "
        "شخصا شخص أشخاص نسمة مدني مدنيين مدنيا فلسطينيا فلسطينيين طفلا أطفال نازح نازحين "
        "نازحا مواطنا مواطنين"
    )
)
_CONJUNCTIONS = frozenset({"and", "ו", "و"})
_BNEI, _ADAM = _norm("בני"), _norm("אדם")
_MONTHS = _table(
    {
        1: "january jan ינואר يناير",
        2: "february feb פברואר فبراير شباط",
        3: "march mar מרץ מרס مارس آذار",
        4: "april apr אפריל أبريل نيسان",
        5: "may מאי مايو أيار",
        6: "june jun יוני يونيو حزيران",
        7: "july jul יולי يوليو تموز",
        8: "august aug אוגוסט أغسطس آب",
        9: "september sep sept ספטמבר سبتمبر أيلول",
        10: "october oct אוקטובר أكتوبر",
        11: "november nov נובמבר نوفمبر",
        12: "december dec דצמבר ديسمبر",
    }
)
# Levantine month names of two words: تشرين الأول (10), تشرين الثاني (11), كانون الأول/الثاني.
_TWO_WORD_MONTHS = {
    (_norm("تشرين"), _norm("الأول")): 10,
    (_norm("تشرين"), _norm("الثاني")): 11,
    (_norm("كانون"), _norm("الأول")): 12,
    (_norm("كانون"), _norm("الثاني")): 1,
}

_HE_PREFIXES = ("וכ", "וב", "ול", "ומ", "וה", "כ", "ב", "ל", "מ", "ה", "ו", "ש")
_AR_PREFIXES = ("وبال", "وال", "بال", "لل", "ال", "و", "ب", "ل", "ف", "ك")
_LEXICON: frozenset[str] = frozenset(
    [*_UNITS, *_TEN_WORDS, *_TENS, *_HUNDREDS, *_HUNDRED_TIMES, *_SCALES, *_DURATION, *_DUALS]
    + [*_PERCENT_WORDS, *_CURRENCY, *_CASUALTY, *_PEOPLE, *_MONTHS]
    + [w for pair in _TWO_WORD_MONTHS for w in pair]
)

# Numerals with thousands separators or decimals; words with inner Hebrew quotes (ש"ח, צה"ל).
_TOKEN = re.compile(
    r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|[^\W\d_]+(?:[\"'][^\W\d_]+)*|[$€₪%٪]"
)


@dataclass(frozen=True)
class _Tok:
    word: str  # normalised, known prefixes stripped when the rest is a lexicon word
    raw: str  # normalised as written
    start: int  # offsets in the normalised text
    end: int
    prefix: str  # the stripped prefix ("" when none)


def _strip_prefix(word: str) -> tuple[str, str]:
    if word in _LEXICON:
        return word, ""
    for prefix in (*_HE_PREFIXES, *_AR_PREFIXES):
        if word.startswith(prefix) and len(word) - len(prefix) >= 2:
            rest = word[len(prefix) :]
            if rest in _LEXICON:
                return rest, prefix
    return word, ""


def _tokens(norm: str) -> list[_Tok]:
    out = []
    for m in _TOKEN.finditer(norm):
        raw = m.group()
        word, prefix = _strip_prefix(raw)
        out.append(_Tok(word, raw, m.start(), m.end(), prefix))
    return out


def _digits(word: str) -> float | None:
    if word and word[0].isdigit():
        return float(word.replace(",", ""))
    return None


def _number_at(toks: list[_Tok], i: int) -> tuple[float, int, bool] | None:
    """Number starting at token i: (value, index after it, written in digits)."""
    first = _digits(toks[i].word)
    if first is not None:
        j = i + 1
        value = first
        if j < len(toks) and toks[j].word in _SCALES and toks[j].word not in _SCALES_ABS:
            value *= _SCALES[toks[j].word]
            j += 1
        return value, j, True
    total = current = 0.0
    j = i
    seen = False
    while j < len(toks):
        w = toks[j].word
        if w in _UNITS:
            current += _UNITS[w]
        elif w in _TEN_WORDS:
            current += 10  # a teen after a unit (ארבעה עשר), or ten alone (עשרה)
        elif w in _TENS:
            current += _TENS[w]
        elif w in _HUNDREDS and not (seen and w in _HUNDRED_TIMES):
            current += _HUNDREDS[w]
        elif seen and w in _HUNDRED_TIMES:
            current = max(current, 1.0) * 100
        elif w in _SCALES:
            total += _SCALES[w] if w in _SCALES_ABS else max(current, 1.0) * _SCALES[w]
            current = 0.0
        elif (
            seen
            and w == "and"
            and j + 1 < len(toks)
            and (toks[j + 1].word in _UNITS or toks[j + 1].word in _TENS)
        ):
            j += 1
            continue
        else:
            break
        seen = True
        j += 1
    if not seen:
        return None
    # "a million people": the scale alone counts as one of it; so does "כמיליון".
    return total + current, j, False


def _month_at(toks: list[_Tok], j: int) -> tuple[int, int] | None:
    """Month number and index after the month name starting at token j."""
    if j >= len(toks):
        return None
    if j + 1 < len(toks):
        two = _TWO_WORD_MONTHS.get((toks[j].word, toks[j + 1].raw))
        if two:
            return two, j + 2
    month = _MONTHS.get(toks[j].word)
    return (int(month), j + 1) if month else None


def _year_at(toks: list[_Tok], j: int) -> int | None:
    if j < len(toks) and re.fullmatch(r"(19|20)\d\d", toks[j].raw):
        return int(toks[j].raw)
    return None


def _date_value(day: int, month: int, year: int | None) -> tuple[float, str]:
    mmdd = month * 100 + day
    return (float(year * 10000 + mmdd), "yyyymmdd") if year else (float(mmdd), "mmdd")


def extract_values(text: str, lang: str = "") -> list[Value]:
    """Every value the sentence states, in order, with its span in the original text.

    `lang` is accepted for callers' clarity; the lexicon covers he, ar and en at once because news
    copy mixes them (English month names in Arabic text, digits everywhere).
    """
    del lang
    norm, index = normalise(text)
    toks = _tokens(norm)
    values: list[Value] = []

    def emit(kind: str, value: float, unit: str, a: int, b: int) -> None:
        start = index[toks[a].start]
        end = index[toks[b - 1].end - 1] + 1
        values.append(Value(kind, float(value), unit, start, end, text[start:end]))

    i = 0
    while i < len(toks):
        w = toks[i].word
        # English "Nov 11", "November 12 2026"
        month = _month_at(toks, i) if toks[i].word[:1].isalpha() else None
        day = _digits(toks[month[1]].word) if month and month[1] < len(toks) else None
        if month and day is not None and 1 <= day <= 31 and day.is_integer():
            end = month[1] + 1
            year = _year_at(toks, end)
            value, unit = _date_value(int(day), month[0], year)
            emit("date", value, unit, i, end + (1 if year else 0))
            i = end + (1 if year else 0)
            continue
        if w in _DUALS:
            emit("duration", _DUALS[w], "day", i, i + 1)
            i += 1
            continue
        currency = _CURRENCY_SIGNS.get(w)
        if currency and i + 1 < len(toks) and _digits(toks[i + 1].word) is not None:
            parsed = _number_at(toks, i + 1)
            if parsed:
                emit("money", parsed[0], currency, i, parsed[1])
                i = parsed[1]
                continue
        parsed = _number_at(toks, i)
        if parsed is None:
            i += 1
            continue
        value, j, in_digits = parsed
        nxt = toks[j].word if j < len(toks) else ""
        after = toks[j + 1].raw if j + 1 < len(toks) else ""
        if nxt in _DURATION:
            emit("duration", value * _DURATION[nxt], "day", i, j + 1)
            i = j + 1
        elif nxt in {"%", "٪"} or nxt in _PERCENT_WORDS:
            emit("percent", value, "%", i, j + 1)
            i = j + 1
        elif (toks[j].raw if j < len(toks) else "", after) in _PERCENT_PHRASES:
            emit("percent", value, "%", i, j + 2)
            i = j + 2
        elif nxt in _CURRENCY:
            emit("money", value, _CURRENCY[nxt], i, j + 1)
            i = j + 1
        elif (
            in_digits
            and value.is_integer()
            and 1 <= value <= 31
            and (month := _month_at(toks, j)) is not None
        ):
            year = _year_at(toks, month[1])
            date_value, unit = _date_value(int(value), month[0], year)
            emit("date", date_value, unit, i, month[1] + (1 if year else 0))
            i = month[1] + (1 if year else 0)
        elif (count := _count_unit(toks, i, j)) is not None:
            emit("count", value, count[0], i, count[1])
            i = count[1]
        elif in_digits:
            emit("number", value, "", i, j)
            i = j
        else:
            i = j
    return values


def _count_unit(toks: list[_Tok], i: int, j: int) -> tuple[str, int] | None:
    """Unit of a count ("killed", "wounded", "people") and the index after its span.

    People or casualty words up to three tokens after the number ("14 people were killed",
    "כמיליון בני אדם", "14 قتيلا"), or a casualty word just before it ("killing 14", "مقتل 14").
    """
    unit = ""
    end = j
    for k in range(j, min(j + 4, len(toks))):
        tok = toks[k]
        if tok.raw in _CONJUNCTIONS or tok.prefix[:1] in _CONJUNCTIONS or _digits(tok.word):
            break  # "14 killed and 40 wounded", "مقتل 14 شخصا وإصابة 40": the next clause
        if tok.word in _CASUALTY:
            unit, end = _CASUALTY[tok.word], k + 1
            break
        if tok.word in _PEOPLE and not unit:
            unit, end = "people", k + 1
        elif tok.word == _BNEI and k + 1 < len(toks) and toks[k + 1].word == _ADAM:
            unit, end = "people", k + 2
    if unit in ("", "people"):
        for k in range(max(0, i - 2), i):
            if toks[k].word in _CASUALTY:
                return _CASUALTY[toks[k].word], max(end, j)
    return (unit, end) if unit else None
