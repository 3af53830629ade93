"""Atomic file writes for training outputs (checkpoints, cached arrays, metadata).

Each writer fills a temporary file beside the target, flushes it to disk and renames it into
place, so an interrupted run or a full disk leaves the previous file intact (the temporary is
removed and the error is raised).
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a temporary binary file beside ``path``, then rename it to ``path``.

    Creates missing parent folders. The file gets the mode a plain ``open(path, "wb")`` gives
    (0666 less the umask). Any error (OSError such as ENOSPC, or one raised by ``write``)
    removes the temporary file and propagates; ``path`` is then unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


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
