"""Where sv2tts keeps its files (models, converted checkpoints, voices), and file hashing."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20  # bytes hashed at a time


def model_cache_dir() -> Path:
    """Cache folder: ``$SV2TTS_HOME``, else ``$XDG_CACHE_HOME/sv2tts``, else ``~/.cache/sv2tts``
    (``%LOCALAPPDATA%/sv2tts`` on Windows). Not created here."""
    home = os.environ.get("SV2TTS_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(os.path.expanduser(xdg)):
        return Path(xdg).expanduser() / "sv2tts"
    local = os.environ.get("LOCALAPPDATA")
    if os.name == "nt" and local:
        return Path(local) / "sv2tts"
    return Path.home() / ".cache" / "sv2tts"


def sha256_file(path: Path, hasher=None, limit: int | None = None):
    """The sha256 hasher (or ``hasher``) updated with the file's bytes (its first ``limit``)."""
    hasher = hasher or hashlib.sha256()
    left = limit
    with open(path, "rb") as f:
        while left is None or left > 0:
            block = f.read(_CHUNK if left is None else min(_CHUNK, left))
            if not block:
                break
            hasher.update(block)
            if left is not None:
                left -= len(block)
    return hasher
