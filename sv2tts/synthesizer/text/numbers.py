"""Number normalisation of RTVC's english_cleaners (keithito-style, inflect engine).

Pure functions: `normalize_numbers(text)` applies, in order, comma removal, pounds, dollars,
decimals, ordinals and integers, each a regex substitution.
"""
from __future__ import annotations

import re
from functools import lru_cache

_comma_number_re = re.compile(r"([0-9][0-9\,]+[0-9])")
_decimal_number_re = re.compile(r"([0-9]+\.[0-9]+)")
_pounds_re = re.compile(r"£([0-9\,]*[0-9]+)")
_dollars_re = re.compile(r"\$([0-9\.\,]*[0-9]+)")
_ordinal_re = re.compile(r"[0-9]+(st|nd|rd|th)")
_number_re = re.compile(r"[0-9]+")


def number_to_words(num: int | str, **kwargs) -> str:
    """inflect's number_to_words; numbers inflect cannot read are spelled digit by digit."""
    engine = _engine()
    try:
        return engine.number_to_words(num, **kwargs)
    except Exception:  # inflect raises for numbers beyond its largest named power
        digits = re.sub(r"[^0-9]", "", str(num))
        return " ".join(engine.number_to_words(d) for d in digits)


@lru_cache(maxsize=1)
def _engine():
    """inflect's engine, imported on first use: importing inflect >= 7 takes ~2 s."""
    import inflect

    return inflect.engine()


def _remove_commas(m: re.Match) -> str:
    return m.group(1).replace(",", "")


def _expand_pounds(m: re.Match) -> str:
    return m.group(1) + " pounds"


def _expand_decimal_point(m: re.Match) -> str:
    return m.group(1).replace(".", " point ")


def _expand_dollars(m: re.Match) -> str:
    match = m.group(1)
    parts = match.split(".")
    if len(parts) > 2:
        return match + " dollars"  # unexpected format
    # RTVC calls int() directly (and crashes on a stray comma such as "$,5"); ignore commas.
    whole = parts[0].replace(",", "")
    frac = parts[1].replace(",", "") if len(parts) > 1 else ""
    dollars = int(whole) if whole else 0
    cents = int(frac) if frac else 0
    if dollars and cents:
        dollar_unit = "dollar" if dollars == 1 else "dollars"
        cent_unit = "cent" if cents == 1 else "cents"
        return f"{dollars} {dollar_unit}, {cents} {cent_unit}"
    if dollars:
        return f"{dollars} {'dollar' if dollars == 1 else 'dollars'}"
    if cents:
        return f"{cents} {'cent' if cents == 1 else 'cents'}"
    return "zero dollars"


def _expand_ordinal(m: re.Match) -> str:
    return number_to_words(m.group(0))


def _expand_number(m: re.Match) -> str:
    num = int(m.group(0))
    if 1000 < num < 3000:
        if num == 2000:
            return "two thousand"
        if 2000 < num < 2010:
            return "two thousand " + number_to_words(num % 100)
        if num % 100 == 0:
            return number_to_words(num // 100) + " hundred"
        return number_to_words(num, andword="", zero="oh", group=2).replace(", ", " ")
    return number_to_words(num, andword="")


def normalize_numbers(text: str) -> str:
    """Spell out numbers as RTVC does: "$3.50" -> "3 dollars, 50 cents" -> words, etc."""
    text = _comma_number_re.sub(_remove_commas, text)
    text = _pounds_re.sub(_expand_pounds, text)
    text = _dollars_re.sub(_expand_dollars, text)
    text = _decimal_number_re.sub(_expand_decimal_point, text)
    text = _ordinal_re.sub(_expand_ordinal, text)
    text = _number_re.sub(_expand_number, text)
    return text
