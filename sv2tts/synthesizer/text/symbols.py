"""RTVC's symbol table: 66 symbols, index = id (no ARPAbet symbols)."""
from __future__ import annotations

PAD = "_"
EOS = "~"
PAD_ID = 0
EOS_ID = 1
_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!'\"(),-.:;? "

SYMBOLS: tuple[str, ...] = (PAD, EOS, *_CHARACTERS)
SYMBOL_TO_ID: dict[str, int] = {s: i for i, s in enumerate(SYMBOLS)}
