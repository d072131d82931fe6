"""Sentences for the synthetic corpus: templates filled from ``words.txt`` with numbers,
dates, money, times and punctuation, each with its spelled-out (LJSpeech "normalized") form.

``make_sentence(rng)`` returns ``(text, normalized_text)``, e.g.::

    ('On May 3rd, 1984, the clerk sold 12 red lamps for $7.50.',
     'On May third, nineteen eighty-four, the clerk sold twelve red lamps for seven dollars and fifty cents.')

Templates are a minority of the corpus (``--template-share``); the rest is real prose (realtext.py).
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path
from typing import Callable

from definitions.tools.ljspeech_synth.normalize import MONTHS, ONES, cardinal, clock, money, ordinal, year

WORDS_FILE = Path(__file__).with_name("words.txt")
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()


@lru_cache(maxsize=1)
def word_lists() -> dict[str, list[str]]:
    """``{category: words}`` from ``words.txt``."""
    lists: dict[str, list[str]] = {}
    current = None
    for line in WORDS_FILE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            lists[current] = []
        elif current is None:
            raise ValueError(f"{WORDS_FILE}: words before the first [category]")
        else:
            lists[current].extend(line.split())
    return lists


# -- numbers (spelled out by normalize.py, the one owner of number words) -------------------
def ordinal_suffix(n: int) -> str:
    """``21`` -> ``21st``."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def plural(noun: str) -> str:
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


# -- templates ---------------------------------------------------------------------------------
Pair = tuple[str, str]  # (text, normalized_text)


def _pick(rng: random.Random, category: str) -> str:
    return rng.choice(word_lists()[category])


def _count(rng: random.Random) -> Pair:
    n = rng.choice([rng.randint(2, 20), rng.randint(21, 99), rng.randint(100, 999)])
    return str(n), cardinal(n)


def _t_purchase(rng: random.Random) -> Pair:
    name, place, adj, noun = _pick(rng, "name"), _pick(rng, "place"), _pick(rng, "adjective"), _pick(rng, "noun")
    n, n_words = _count(rng)
    verb = _pick(rng, "verb")
    return (f"{name} {verb} {n} {adj} {plural(noun)} in {place}.",
            f"{name} {verb} {n_words} {adj} {plural(noun)} in {place}.")


def _t_date(rng: random.Random) -> Pair:
    month, day, yr = rng.choice(MONTHS), rng.randint(1, 28), rng.randint(1850, 2030)
    who, verb, adj, noun = _pick(rng, "profession"), _pick(rng, "verb"), _pick(rng, "adjective"), _pick(rng, "noun")
    return (f"On {month} {ordinal_suffix(day)}, {yr}, the {who} {verb} the {adj} {noun}.",
            f"On {month} {ordinal(day)}, {year(yr)}, the {who} {verb} the {adj} {noun}.")


def _t_price(rng: random.Random) -> Pair:
    noun, dollars, cents = _pick(rng, "noun"), rng.randint(1, 500), rng.choice([0, 0, 25, 50, 75, rng.randint(1, 99)])
    pct = rng.randint(2, 60)
    price = f"${dollars}" + (f".{cents:02d}" if cents else "")
    return (f"The {noun} cost {price}, which was {pct}% more than last year.",
            f"The {noun} cost {money(dollars, cents)}, which was {cardinal(pct)} percent more than last year.")


def _t_quote(rng: random.Random) -> Pair:
    # Quotes are part of the text, as in LJSpeech (metadata.csv has no quoting).
    adj, noun, name, adv, adj2 = (_pick(rng, "adjective"), _pick(rng, "noun"), _pick(rng, "name"),
                                  _pick(rng, "adverb"), _pick(rng, "adjective"))
    text = f'"{adj.capitalize()} {plural(noun)}," said {name}, "are {adv} {adj2}."'
    return text, text


def _t_time(rng: random.Random) -> Pair:
    surname, verb, noun = _pick(rng, "surname"), _pick(rng, "verb"), _pick(rng, "noun")
    hour, minute = rng.randint(1, 12), rng.choice([0, 15, 30, 45, rng.randint(1, 59)])
    title, title_words = rng.choice([("Mr.", "Mister"), ("Mrs.", "Missus"), ("Dr.", "Doctor")])
    ampm, ampm_words = rng.choice([("a.m.", "a m"), ("p.m.", "p m")])
    return (f"{title} {surname} {verb} the {noun} at {hour}:{minute:02d} {ampm}",
            f"{title_words} {surname} {verb} the {noun} at {clock(hour, minute)} {ampm_words}.")


def _t_population(rng: random.Random) -> Pair:
    yr, n, place, who = rng.randint(1800, 2020), rng.randint(1000, 900000), _pick(rng, "place"), _pick(rng, "profession")
    return (f"In {yr}, about {n:,} people lived in {place}; most of them were {plural(who)}.",
            f"In {year(yr)}, about {cardinal(n)} people lived in {place}; most of them were {plural(who)}.")


def _t_room(rng: random.Random) -> Pair:
    n, noun, noun2 = rng.randint(1, 400), _pick(rng, "noun"), _pick(rng, "noun")
    adv, adj = _pick(rng, "adverb"), _pick(rng, "adjective")
    return (f"Room {n}: the {noun} was {adv} {adj}, and the {noun2} was not.",
            f"Room {cardinal(n)}: the {noun} was {adv} {adj}, and the {noun2} was not.")


def _t_decimal(rng: random.Random) -> Pair:
    name, noun, whole, frac = _pick(rng, "name"), _pick(rng, "noun"), rng.randint(1, 99), rng.randint(1, 9)
    return (f"{name}'s {noun} weighed {whole}.{frac} kilograms.",
            f"{name}'s {noun} weighed {cardinal(whole)} point {ONES[frac]} kilograms.")


def _t_plain(rng: random.Random) -> Pair:
    adj, noun, verb, adj2, noun2, noun3, adv = (_pick(rng, "adjective"), _pick(rng, "noun"), _pick(rng, "verb"),
                                                _pick(rng, "adjective"), _pick(rng, "noun"), _pick(rng, "noun"),
                                                _pick(rng, "adverb"))
    text = f"The {adj} {noun} {verb} {article(adj2)} {adj2} {noun2} near the {noun3}, {adv}."
    return text, text


def _t_question(rng: random.Random) -> Pair:
    who, noun, adj, day = _pick(rng, "profession"), _pick(rng, "noun"), _pick(rng, "adjective"), rng.choice(DAYS)
    name = _pick(rng, "name")
    text = f"Did the {who} tell {name} that the {noun} was {adj} on {day}?"
    return text, text


def _t_list(rng: random.Random) -> Pair:
    a, b, c = plural(_pick(rng, "noun")), plural(_pick(rng, "noun")), _pick(rng, "noun")  # "one lamp", not "one lamps"
    n1, w1 = _count(rng)
    who, verb = _pick(rng, "profession"), _pick(rng, "verb")
    return (f"The {who} {verb} {n1} {a}, two {b} and one {c} - nothing else.",
            f"The {who} {verb} {w1} {a}, two {b} and one {c}, nothing else.")


TEMPLATES: tuple[Callable[[random.Random], Pair], ...] = (
    _t_purchase, _t_date, _t_price, _t_quote, _t_time, _t_population, _t_room, _t_decimal, _t_plain,
    _t_question, _t_list,
)


def make_sentence(rng: random.Random) -> Pair:
    """One ``(text, normalized_text)`` pair from a random template."""
    return rng.choice(TEMPLATES)(rng)


def unique_sentences(n: int, seed: int, exclude: set[str] = frozenset()) -> list[Pair]:
    """``n`` distinct sentences (by normalized text), none of them in ``exclude``."""
    rng = random.Random(seed)
    seen, out = set(exclude), []
    while len(out) < n:
        pair = make_sentence(rng)
        if pair[1] not in seen:
            seen.add(pair[1])
            out.append(pair)
    return out
