"""Text front end: every golden case exactly, literal cleaner tests, warnings on dropped input."""
from __future__ import annotations

import json
import logging

import pytest

from sv2tts.synthesizer import split_sentences, text_to_sequence
from sv2tts.synthesizer.text import (SYMBOLS, basic_cleaners, clean_text, collapse_whitespace,
                                     convert_to_ascii, english_cleaners, expand_abbreviations,
                                     normalize_numbers, sequence_to_text,
                                     transliteration_cleaners)


@pytest.fixture(scope="module")
def cases(golden):
    cases = json.loads((golden / "text" / "text_cases.json").read_text())
    assert cases["cases"]
    return cases


def test_symbol_table_is_rtvcs(cases):
    assert list(SYMBOLS) == cases["symbols"]
    assert len(SYMBOLS) == 66 and cases["pad_id"] == 0 and cases["eos_id"] == 1


def test_every_golden_case_gives_rtvcs_ids(cases):
    for case in cases["cases"]:
        text = case["text"]
        assert text_to_sequence(text) == case["sequence_of_stripped_text"], text
        assert text_to_sequence(text, strip=False) == case["sequence"], text
        assert sequence_to_text(case["sequence"]) == case["sequence_to_text"], text


def test_every_golden_case_cleaners(cases):
    for case in cases["cases"]:
        text = case["text"]
        assert english_cleaners(text) == case["english_cleaners"], text
        assert basic_cleaners(text) == case["basic_cleaners"], text
        assert transliteration_cleaners(text) == case["transliteration_cleaners"], text


@pytest.mark.parametrize("text, expected", [
    ("test 1", "test one"),
    ("It's 1999, 2000, 2005, 2100, 1200 and 3000.",
     "it's nineteen ninety-nine, two thousand, two thousand five, twenty-one hundred, "
     "twelve hundred and three thousand."),
    ("Dr. Smith met Mrs. Jones at St. Mary's on Jan. 3.",
     "doctor smith met misess jones at saint mary's on jan. three."),
    ("Ünïcödé café — naïve “quotes”", 'unicode cafe -- naive "quotes"'),
    ("Mr.Smith", "mistersmith"),
    ("1,500", "fifteen hundred"),
    ("2007", "two thousand seven"),
    ("103", "one hundred three"),
    ("103rd", "one hundred and third"),
    ("1001 1010 2010 3001", "ten oh one ten ten twenty ten three thousand one"),
    ("0 1000000", "zero one million"),
    ("$3.50", "three dollars, fifty cents"),
    ("$0.01", "one cent"),
    ("$.5", "five cents"),
    ("$1", "one dollar"),
    ("$0", "zero dollars"),
    ("$1.2.3", "one point two.three dollars"),
    ("3.14159", "three point fourteen thousand, one hundred fifty-nine"),
    ("£5.", "psfive."),
    ("  a  ", " a "),
    ("Dr Smith", "dr smith"),
])
def test_english_cleaners_literal(text, expected):
    assert english_cleaners(text) == expected


def test_small_cleaners():
    assert convert_to_ascii("£") == "PS"
    assert collapse_whitespace("a \t\n b") == "a b"
    assert expand_abbreviations("capt. ltd. col. ft.") == "captain limited colonel fort"
    assert normalize_numbers("22nd 1st") == "twenty-second first"
    assert basic_cleaners("  ÀB  ") == " àb "
    with pytest.raises(ValueError, match="unknown cleaner"):
        clean_text("x", ["nope"])


def _ids(cleaned: str) -> list[int]:
    """ids of already-cleaned text, EOS appended."""
    return [SYMBOLS.index(c) for c in cleaned] + [1]


def test_literal_ids():
    assert text_to_sequence("Hello, World!") == [35, 32, 39, 39, 42, 59, 65, 50, 42, 45, 39, 31,
                                                 54, 1]
    assert text_to_sequence("test 1") == [47, 32, 46, 47, 65, 42, 41, 32, 1]
    assert text_to_sequence("") == [1]
    # segments around {...} are cleaned separately: the double space stays
    assert text_to_sequence("Turn left on {HH AW1 S T AH0 N} Street.") == \
        _ids("turn left on  street.")


def test_huge_number_does_not_crash():
    ids = text_to_sequence("9" * 60)
    assert ids[-1] == 1 and len(ids) > 60


def test_warns_on_dropped_arpabet(caplog):
    with caplog.at_level(logging.WARNING):
        assert text_to_sequence("{HH AH0 L OW1}") == [1]
    assert "HH AH0 L OW1" in caplog.text and "ARPAbet" in caplog.text


def test_warns_on_dropped_characters(caplog):
    with caplog.at_level(logging.WARNING):
        ids = text_to_sequence("#1 hit & 50% off")
    assert ids == _ids("one hit  fifty off")
    for ch in "#&%":
        assert repr(ch) in caplog.text


def test_no_warning_for_clean_text(caplog):
    with caplog.at_level(logging.WARNING):
        text_to_sequence("A perfectly normal sentence, isn't it?")
    assert caplog.text == ""


def test_warns_on_text_lost_after_braces_on_a_line(caplog):
    # RTVC's regex stops at the newline after a {...} group: the next line is lost.
    with caplog.at_level(logging.WARNING):
        ids = text_to_sequence("a {HH} b\nlost line")
    assert ids == _ids("a  b")
    assert "lost line" in caplog.text


def test_split_sentences_short_text_is_whole():
    assert split_sentences("  Dr. Smith went home. He slept.  ") == ["Dr. Smith went home. He slept."]
    assert split_sentences(" \n\t ") == []
    assert split_sentences("Short\ntext on two lines.") == ["Short\ntext on two lines."]


def test_split_sentences_of_a_short_text_when_asked():
    assert split_sentences("  Dr. Smith went home. He slept.  ", whole_if_fits=False) == [
        "Dr. Smith went home.", "He slept."]
    assert split_sentences("Short\ntext on two lines.", whole_if_fits=False) == ["Short", "text on two lines."]


def test_split_sentences_long_text_never_drops_words():
    text = ("Dr. Smith met J. R. Jones at St. Mary's. " * 5 + "Really?! Yes. " +
            "word " * 120 + "\nA new line, with a clause; and more. " +
            "x" * 450 + " {HH AH0 L OW1} end.")
    chunks = split_sentences(text, max_chars=100)
    assert "".join(chunks).replace(" ", "") == "".join(text.split())
    assert all(0 < len(c) <= 100 for c in chunks)
    assert chunks[0] == "Dr. Smith met J. R. Jones at St. Mary's."
    assert "Really?!" in chunks and "Yes." in chunks
    assert any(c.endswith("{HH AH0 L OW1} end.") for c in chunks)


def test_split_sentences_bad_max():
    with pytest.raises(ValueError):
        split_sentences("abc", max_chars=0)
