"""Atomic writes of training outputs (checkpoints, cached arrays, metadata) through
core.files.write_atomic: an interrupted run or a full disk leaves the previous file intact."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.files import write_atomic


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """``np.save`` atomically (no pickled objects)."""
    return write_atomic(path, lambda f: np.save(f, np.asarray(array), allow_pickle=False))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text atomically."""
    data = text.encode("utf-8")
    return write_atomic(path, lambda f: f.write(data))


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` atomically (a dict of tensors and plain values)."""
    import torch

    return write_atomic(path, lambda f: torch.save(obj, f))
