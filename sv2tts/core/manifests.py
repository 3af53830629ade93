"""Manifest files (a batch's items, a fine-tuning run's utterances): the rows of a JSONL one."""
from __future__ import annotations

import json
import os

from .errors import InputError


def jsonl_rows(text: str, path: str | os.PathLike, expected: str = "a JSON object") -> list[tuple[int, dict]]:
    """(line number, object) of every non-blank line of ``text``, the content of the JSONL
    manifest ``path``. InputError naming the file and line for invalid JSON or a line that is
    not an object (``expected`` says what a line must be)."""
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: line {n} is not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}: line {n} is not {expected}")
        rows.append((n, row))
    return rows
