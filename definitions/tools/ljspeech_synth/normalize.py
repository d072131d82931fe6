"""Text normalization as in LJSpeech's ``normalized_text``: what a reader says, spelled out.

``normalize("Dr. Smith paid $7.50 on May 3rd, 1984 at 7:05 p.m.; 12% more.")`` ->
``"Doctor Smith paid seven dollars and fifty cents on May third, nineteen eighty-four at seven oh
five p m; twelve percent more."``

Number words come from ``num2words`` (British/LJSpeech style: "one hundred and five"); this module
only finds the numbers, money, times, ordinals, percentages and abbreviations in running text.
The template sentences use the same number words, so the whole corpus reads numbers one way.
"""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen").split()
MONTHS = ("January February March April May June July August September October November "
          "December").split()

# Abbreviations that end with a period, as read aloud (case-sensitive, whole word).
ABBREVIATIONS = {
    "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Dr.": "Doctor", "Prof.": "Professor",
    "Jr.": "Junior", "Sr.": "Senior", "Rev.": "Reverend", "Gen.": "General", "Col.": "Colonel",
    "Capt.": "Captain", "Lt.": "Lieutenant", "Sgt.": "Sergeant", "Gov.": "Governor", "Hon.": "Honorable",
    "Mt.": "Mount", "Ft.": "Fort", "Co.": "Company", "Ltd.": "Limited", "Inc.": "Incorporated",
    "vs.": "versus", "etc.": "et cetera", "i.e.": "that is", "e.g.": "for example",
    "a.m.": "a m", "p.m.": "p m", "A.M.": "a m", "P.M.": "p m", "Jan.": "January", "Feb.": "February",
    "Aug.": "August", "Sept.": "September", "Oct.": "October", "Nov.": "November", "Dec.": "December",
}
FRACTIONS = {"1/2": "one half", "1/3": "one third", "2/3": "two thirds", "1/4": "one quarter",
             "3/4": "three quarters"}
CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence")}
SCALES = ("thousand", "million", "billion", "trillion")

_CHAR_MAP = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                           "\u2014": " - ", "\u2026": "...", "\u00a0": " ", "\t": " "})


def cardinal(n: int) -> str:
    """``1234`` -> ``one thousand two hundred and thirty-four``."""
    return num2words(n).replace(",", "")


def ordinal(n: int) -> str:
    """``21`` -> ``twenty-first``."""
    return num2words(n, to="ordinal").replace(",", "")


def year(n: int) -> str:
    """A year as read aloud: 1984 -> nineteen eighty-four, 1905 -> nineteen oh five, 1800 -> eighteen hundred."""
    return num2words(n, to="year").replace(",", "").replace("oh-", "oh ")


def clock(hour: int, minute: int) -> str:
    """7:05 -> seven oh five, 7:00 -> seven o'clock."""
    if minute == 0:
        return f"{cardinal(hour)} o'clock"
    return f"{cardinal(hour)} " + (f"oh {ONES[minute]}" if minute < 10 else cardinal(minute))


def money(whole: int, cents: int, symbol: str = "$") -> str:
    """``(7, 50)`` -> ``seven dollars and fifty cents``."""
    one, many, sub_one, sub_many = CURRENCIES[symbol]
    out = f"{cardinal(whole)} {one if whole == 1 else many}"
    if cents:
        out += f" and {cardinal(cents)} {sub_one if cents == 1 else sub_many}"
    return out


def decimal(text: str) -> str:
    """``"3.14"`` -> ``three point one four`` (digits after the point one by one)."""
    whole, _, frac = text.partition(".")
    return cardinal(int(whole or 0)) + " point " + " ".join(ONES[int(d)] for d in frac)


def _number(text: str) -> str:
    """A plain number with optional thousands commas or decimal point."""
    text = text.replace(",", "")
    return decimal(text) if "." in text else cardinal(int(text))


def _money(m: re.Match) -> str:
    symbol, amount, scale = m.group(1), m.group(2).replace(",", ""), m.group(3)
    one, many = CURRENCIES[symbol][:2]
    if scale:  # "$5 million", "$2.5 billion"
        return f"{_number(amount)} {scale} {many}"
    whole, _, cents = amount.partition(".")
    if cents and len(cents) != 2:
        return f"{decimal(amount)} {many}"
    return money(int(whole or 0), int(cents or 0), symbol)


def _time(m: re.Match) -> str:
    hour, minute, ampm = int(m.group(1)), int(m.group(2)), m.group(3)
    out = clock(hour, minute)
    return out + (" " + " ".join(ampm.lower().replace(".", "")) if ampm else "")


def _year_or_number(m: re.Match) -> str:
    n = int(m.group(0))
    return year(n) if 1100 <= n <= 2099 else cardinal(n)


def _decade(m: re.Match) -> str:
    words = year(int(m.group(1)))  # "nineteen eighty" -> "nineteen eighties"
    return (words[:-1] + "ies") if words.endswith("y") else words + "s"


_ABBREV_RE = re.compile(r"(?<![\w.])(" + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True))
                        + r")(?=\W|$)")
_RULES: list[tuple[re.Pattern, object]] = [
    (re.compile(r"([$£])(\d[\d,]*(?:\.\d+)?)(?:\s+(" + "|".join(SCALES) + r"))?\b"), _money),
    (re.compile(r"\b(\d{1,2}):([0-5]\d)(?:\s*([ap]\.?m\.?|[AP]\.?M\.?))?(?=\W|$)"), _time),
    (re.compile(r"\b(\d[\d,]*(?:\.\d+)?)\s*(?:%|per ?cent\b)"), lambda m: f"{_number(m.group(1))} percent"),
    (re.compile(r"\b(\d+)(?:st|nd|rd|th)\b"), lambda m: ordinal(int(m.group(1)))),
    (re.compile(r"\b(" + "|".join(MONTHS) + r")\s+(\d{1,2})\b(?!:)"),
     lambda m: f"{m.group(1)} {ordinal(int(m.group(2)))}"),
    (re.compile(r"\b(1[1-9]\d0|20[0-9]0)'?s\b"), _decade),
    (re.compile(r"(?<![\d/])(\d)/(\d)(?![\d/])"), lambda m: FRACTIONS.get(m.group(0), m.group(0))),
    (re.compile(r"\b\d{1,3}(?:,\d{3})+(?:\.\d+)?\b|\b\d+\.\d+\b"), lambda m: _number(m.group(0))),
    (re.compile(r"\b\d{4}\b"), _year_or_number),
    (re.compile(r"\b\d+\b"), lambda m: cardinal(int(m.group(0)))),
]


def clean_characters(text: str) -> str:
    """Typographic quotes and dashes to ASCII, accents dropped (café -> cafe), whitespace collapsed."""
    text = unicodedata.normalize("NFKD", text.translate(_CHAR_MAP))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"\s+", " ", text).strip()


def normalize(text: str) -> str:
    """``text`` as spoken: abbreviations, money, times, percentages, ordinals, dates, years and
    numbers written out in words; ``&`` -> ``and``. Other characters are left for the caller's filter."""
    text = clean_characters(text)
    text = _ABBREV_RE.sub(lambda m: ABBREVIATIONS[m.group(1)], text)
    # "St." is Saint before a name ("St. Paul") and Street after one ("Baker St.").
    text = re.sub(r"\bSt\.(?=\s+[A-Z])", "Saint", text)
    text = re.sub(r"\bSt\.", "Street", text)
    text = re.sub(r"\bNo\.\s*(?=\d)", "number ", text)  # "No. 5", but not "No. I won't."
    text = text.replace(" & ", " and ")
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    # Single quotes used as quotation marks are not spoken (apostrophes inside words are kept).
    text = re.sub(r"(?<![A-Za-z])'|'(?![A-Za-z])", "", text)
    return re.sub(r"\s+", " ", text).strip()
