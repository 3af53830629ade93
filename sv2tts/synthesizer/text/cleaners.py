"""RTVC's text cleaners (keithito-style): tiny pure str -> str functions.

`english_cleaners` = ascii transliteration -> lowercase -> numbers -> abbreviations ->
whitespace collapse, in that order (the order matters, e.g. "£" becomes "PS" first).
"""
from __future__ import annotations

import re

from unidecode import unidecode

from .numbers import normalize_numbers

_whitespace_re = re.compile(r"\s+")

# (abbreviation, expansion) in RTVC's order; matched case-insensitively with the period.
_ABBREVIATIONS = [
    (re.compile(r"\b%s\." % abbr, re.IGNORECASE), expansion)
    for abbr, expansion in [
        ("mrs", "misess"), ("mr", "mister"), ("dr", "doctor"), ("st", "saint"),
        ("co", "company"), ("jr", "junior"), ("maj", "major"), ("gen", "general"),
        ("drs", "doctors"), ("rev", "reverend"), ("lt", "lieutenant"), ("hon", "honorable"),
        ("sgt", "sergeant"), ("capt", "captain"), ("esq", "esquire"), ("ltd", "limited"),
        ("col", "colonel"), ("ft", "fort"),
    ]
]


def convert_to_ascii(text: str) -> str:
    """Transliterate to ASCII with Unidecode ("é" -> "e", "—" -> "--", "£" -> "PS")."""
    return unidecode(text)


def lowercase(text: str) -> str:
    return text.lower()


def expand_numbers(text: str) -> str:
    return normalize_numbers(text)


def expand_abbreviations(text: str) -> str:
    """"dr." -> "doctor" etc.; the period is consumed and no space is inserted."""
    for regex, expansion in _ABBREVIATIONS:
        text = regex.sub(expansion, text)
    return text


def collapse_whitespace(text: str) -> str:
    """Every run of whitespace -> one space (leading/trailing single spaces remain)."""
    return _whitespace_re.sub(" ", text)


def basic_cleaners(text: str) -> str:
    return collapse_whitespace(lowercase(text))


def transliteration_cleaners(text: str) -> str:
    return collapse_whitespace(lowercase(convert_to_ascii(text)))


def english_cleaners(text: str) -> str:
    """RTVC's default cleaner pipeline for English text."""
    text = convert_to_ascii(text)
    text = lowercase(text)
    text = expand_numbers(text)
    text = expand_abbreviations(text)
    text = collapse_whitespace(text)
    return text


CLEANERS = {
    "english_cleaners": english_cleaners,
    "basic_cleaners": basic_cleaners,
    "transliteration_cleaners": transliteration_cleaners,
}
