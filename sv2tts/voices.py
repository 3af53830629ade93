"""Voices saved as files: a (256,) float32 unit-norm embedding in a ``.npy`` (``sv2tts embed``)."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .core.files import write_bytes_atomic
from .core.errors import InputError


def is_voice_file(reference) -> bool:
    """True for a path ending in .npy (a saved voice rather than audio)."""
    return isinstance(reference, (str, os.PathLike)) and Path(reference).suffix.lower() == ".npy"


def load_voice(path: str | os.PathLike) -> np.ndarray:
    """Read a voice saved by ``save_voice`` (.npy): (256,) float32, finite, unit norm."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: voice file not found")
    not_a_voice = f"{path}: not a voice file saved by `sv2tts embed` (not a plain .npy array)"
    try:
        with open(path, "rb") as f:  # the header first: a lying shape must not allocate anything
            version = np.lib.format.read_magic(f)
            shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                               else np.lib.format.read_array_header_2_0(f))
    except (ValueError, OSError, EOFError):
        raise InputError(not_a_voice) from None
    if shape != (256,) or not np.issubdtype(dtype, np.floating):
        raise InputError(f"{path}: not a voice file saved by `sv2tts embed`: expected a (256,) float voice "
                         f"embedding, got {dtype} {shape}")
    try:
        voice = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise InputError(not_a_voice) from None
    if not np.isfinite(voice).all() or np.linalg.norm(voice) == 0:
        raise InputError(f"{path}: voice embedding contains NaN/inf or is all zeros")
    return (voice / np.linalg.norm(voice)).astype(np.float32)


def save_voice(path: str | os.PathLike, embedding: np.ndarray) -> Path:
    """Save a (256,) embedding as .npy, atomically (temporary file + rename)."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise InputError(f"{path}: a voice file must end in .npy")
    embedding = np.asarray(embedding, dtype=np.float32)
    if embedding.shape != (256,) or not np.isfinite(embedding).all():
        raise InputError(f"voice: expected a finite (256,) embedding, got shape {embedding.shape}")
    buf = io.BytesIO()
    np.save(buf, embedding, allow_pickle=False)
    write_bytes_atomic(path, buf.getvalue())
    return path
