"""Atomic file writes: a temporary file beside the target, flushed to disk, renamed into place.

An interrupted run, a full disk or a crash never leaves a half-written file under the target's
name: the previous file (if any) stays intact and the temporary is removed. Temporaries are
named ``.<name>.<random>.part`` (created exclusively: a planted file or link is never written
through); ones older than 10 minutes, left by a killed process, are removed on the next write.
"""
from __future__ import annotations

import glob
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import InputError

log = logging.getLogger(__name__)

_STALE_SECONDS = 600  # a temporary this old was left by a killed run (a live write takes seconds)


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a temporary binary file beside ``path``, then rename it to ``path``.

    Creates missing parent folders (InputError when that or the temporary file is impossible).
    The file gets the mode a plain ``open(path, "wb")`` gives (0666 less the umask). An error
    while writing (OSError such as ENOSPC, or one raised by ``write``) removes the temporary
    and propagates; ``path`` is then unchanged.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as e:
        raise InputError(f"{path}: cannot write here ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would give
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see write_atomic)."""
    return write_atomic(path, lambda f: f.write(data))


def _remove_stale_temporaries(path: Path) -> None:
    """Delete ``.<name>.*.part`` files of ours beside ``path`` left by a killed run."""
    now = time.time()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        try:
            if tmp.is_file() and not tmp.is_symlink() and now - tmp.stat().st_mtime > _STALE_SECONDS:
                tmp.unlink()
                log.info("%s: removed a temporary file left by an interrupted run", tmp)
        except OSError:
            pass  # another run removed it first, or no permission: not ours to insist on


def _umask() -> int:
    """The process's umask, read without changing it where the OS tells (Linux), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
