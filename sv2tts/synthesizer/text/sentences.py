"""Splitting long text into sentence-sized chunks the decoder can handle.

Pure functions. Nothing is dropped: joining the chunks with single spaces gives back the
text with its whitespace collapsed.
"""
from __future__ import annotations

import re

MAX_CHUNK_CHARS = 200  # ~13-16 s of speech, well under the 2000-frame (25 s) decoder cap

# Words whose trailing period does not end a sentence (RTVC's abbreviations + common ones).
_ABBREVIATIONS = {
    "mrs", "mr", "dr", "st", "co", "jr", "maj", "gen", "drs", "rev", "lt", "hon", "sgt",
    "capt", "esq", "ltd", "col", "ft", "ms", "prof", "sr", "vs", "etc", "no", "jan", "feb",
    "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "e.g", "i.e",
}
# A sentence ends after . ! ? (possibly repeated, possibly closed by quotes/brackets).
_end_re = re.compile(r"[.!?]+[\"')\]]*$")
_token_re = re.compile(r"\{[^}\n]*\}|\S+")


def split_sentences(text: str, max_chars: int = MAX_CHUNK_CHARS, *, whole_if_fits: bool = True) -> list[str]:
    """Split `text` into chunks of at most `max_chars` characters, in order.

    A text that fits is returned whole (one pass, as RTVC, line breaks included) unless
    ``whole_if_fits`` is False (streaming: the first sentence alone is heard sooner). Longer
    text is cut at line breaks and sentence ends ("." "!" "?", not after abbreviations such as "Dr." or
    initials); a sentence still too long is cut after commas/semicolons/colons, then at
    word boundaries, and a single word longer than `max_chars` is cut into pieces.
    {ARPAbet} groups are never cut. Whitespace-only input gives [].
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    text = text.strip()
    if not text:
        return []
    if len(text) <= max_chars and whole_if_fits:
        return [text]
    chunks: list[str] = []
    for line in text.splitlines():
        for sentence in _sentences(line):
            chunks += _fit(sentence, max_chars)
    return chunks


def _sentences(line: str) -> list[str]:
    out, current = [], []
    for token in _token_re.findall(line):
        current.append(token)
        if _end_re.search(token) and not _is_abbreviation(token):
            out.append(" ".join(current))
            current = []
    if current:
        out.append(" ".join(current))
    return out


def _is_abbreviation(token: str) -> bool:
    word = token.rstrip(".!?\"')]").lstrip("\"'([").lower()
    if not token.rstrip("\"')]").endswith("."):
        return False  # "!" and "?" always end a sentence
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _fit(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    tokens = _token_re.findall(sentence)
    # First try clause boundaries, then plain word boundaries.
    clauses, current = [], []
    for token in tokens:
        current.append(token)
        if token[-1] in ",;:":
            clauses.append(current)
            current = []
    if current:
        clauses.append(current)
    out: list[str] = []
    for clause in clauses:
        for piece in _pack(clause, max_chars):
            if out and len(out[-1]) + 1 + len(piece) <= max_chars:
                out[-1] += " " + piece
            else:
                out.append(piece)
    return out


def _pack(tokens: list[str], max_chars: int) -> list[str]:
    out: list[str] = []
    line = ""
    for token in tokens:
        while len(token) > max_chars:  # a single over-long word
            if line:
                out.append(line)
                line = ""
            out.append(token[:max_chars])
            token = token[max_chars:]
        if not line:
            line = token
        elif len(line) + 1 + len(token) <= max_chars:
            line += " " + token
        else:
            out.append(line)
            line = token
    if line:
        out.append(line)
    return out
