"""Text -> symbol ids, exactly as RTVC's `text_to_sequence(text, ["english_cleaners"])`.

Where RTVC silently drops input (ARPAbet phonemes, which have no symbol in its 66-symbol
table; characters such as "#" or "&" with no symbol; the rest of a line after a {...} group
when the text holds a newline), the same ids are produced and a warning names what was dropped.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from .cleaners import CLEANERS
from .symbols import EOS, EOS_ID, PAD, SYMBOL_TO_ID, SYMBOLS

logger = logging.getLogger(__name__)

# RTVC's pattern: "." does not match newlines, so a match stops at the end of the line.
_curly_re = re.compile(r"(.*?)\{(.+?)\}(.*)")


def clean_text(text: str, cleaner_names: Sequence[str] = ("english_cleaners",)) -> str:
    """Apply the named cleaners in order (default: RTVC's english_cleaners)."""
    for name in cleaner_names:
        cleaner = CLEANERS.get(name)
        if cleaner is None:
            raise ValueError(f"unknown cleaner {name!r} (known: {', '.join(CLEANERS)})")
        text = cleaner(text)
    return text


def text_to_sequence(
    text: str, cleaner_names: Sequence[str] = ("english_cleaners",), *, strip: bool = True
) -> list[int]:
    """The ids the model sees for `text`, EOS (1) appended.

    strip=True cleans `text.strip()`, as RTVC's synthesize_spectrograms does; strip=False
    gives RTVC's bare `text_to_sequence(text)`. {ARPAbet} groups are parsed and dropped
    (RTVC has no ARPAbet symbols); each segment between them is cleaned separately.
    """
    if strip:
        text = text.strip()
    original = text
    ids: list[int] = []
    dropped_chars: list[str] = []
    dropped_phones: list[str] = []
    while text:
        m = _curly_re.match(text)
        if m is None:
            ids += _symbols_to_ids(clean_text(text, cleaner_names), dropped_chars)
            break
        ids += _symbols_to_ids(clean_text(m.group(1), cleaner_names), dropped_chars)
        dropped_phones += m.group(2).split()
        rest = m.group(3)
        consumed = m.end()
        if consumed < len(text):  # the match stopped at a newline: RTVC loses the rest
            lost = text[consumed:]
            if lost.strip():
                logger.warning("text %s: dropped %r after a {...} group on the same line "
                               "(as RTVC does); put {...} groups on the last line",
                               _short(original), _short(lost))
        text = rest
    ids.append(EOS_ID)
    if dropped_phones:
        logger.warning("text %s: dropped ARPAbet phonemes %s: the symbol table has no "
                       "ARPAbet symbols", _short(original), " ".join(dropped_phones))
    if dropped_chars:
        uniq = "".join(dict.fromkeys(dropped_chars))
        logger.warning("text %s: dropped characters %s that have no symbol",
                       _short(original), " ".join(repr(c) for c in uniq))
    return ids


def sequence_to_text(ids: Sequence[int]) -> str:
    """Inverse mapping (for display): ids -> symbols; the EOS and padding ids are kept."""
    return "".join(SYMBOLS[i] for i in ids if 0 <= i < len(SYMBOLS))


def _symbols_to_ids(text: str, dropped: list[str]) -> list[int]:
    out = []
    for ch in text:
        idx = SYMBOL_TO_ID.get(ch)
        if idx is None or ch in (PAD, EOS):
            dropped.append(ch)
        else:
            out.append(idx)
    return out


def _short(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[: n - 1] + "…")
