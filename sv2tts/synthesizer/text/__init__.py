"""Text front end of the synthesizer: RTVC's cleaners, symbol table and text -> ids."""
from .cleaners import (basic_cleaners, collapse_whitespace, convert_to_ascii, english_cleaners,
                       expand_abbreviations, expand_numbers, lowercase, transliteration_cleaners)
from .numbers import normalize_numbers
from .sentences import MAX_CHUNK_CHARS, split_sentences
from .sequence import clean_text, sequence_to_text, text_to_sequence
from .symbols import EOS_ID, PAD_ID, SYMBOLS

__all__ = [
    "EOS_ID", "MAX_CHUNK_CHARS", "PAD_ID", "SYMBOLS", "basic_cleaners", "clean_text",
    "collapse_whitespace", "convert_to_ascii", "english_cleaners", "expand_abbreviations",
    "expand_numbers", "lowercase", "normalize_numbers", "sequence_to_text", "split_sentences",
    "text_to_sequence", "transliteration_cleaners",
]
