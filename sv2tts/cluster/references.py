"""The driver's side of the references: read once and shipped to workers, unless the workers
see the driver's files (a filesystem shared by every node) and read them there."""
from __future__ import annotations

import collections
import hashlib
import os
from pathlib import Path

from ..core.audio import check_input_file
from ..core.errors import AudioError, Sv2ttsError
from ..voices import is_voice_file, load_voice
from .worker import Reference

MAX_PROBED_FOLDERS = 64  # folders of references probed for a shared filesystem


class References:
    """Each reference of a batch read once, as a :class:`Reference` to send with its items.

    ``shared``: workers read references by path; else the driver reads their bytes and puts
    them in Ray's object store (``put``: ``ray.put``) once per file, dropped (freed) when no
    unfinished item uses them. A saved voice (.npy) is read here either way. A missing or
    unreadable reference travels as its error, which its items report (after their text is
    checked, as in the local batch).
    """

    def __init__(self, references: list[Path], *, shared: bool, put) -> None:
        self.shared = shared
        self._put = put
        self._uses = collections.Counter(references)
        self._loaded: dict[Path, Reference] = {}

    def get(self, path: Path) -> Reference:
        ref = self._loaded.get(path)
        if ref is None:
            try:
                ref = self._load(path)
            except Sv2ttsError as e:
                ref = Reference(key=f"error:{os.path.abspath(path)}", name=str(path), error=e)
            self._loaded[path] = ref
        return ref

    def release(self, path: Path) -> None:
        """One item of ``path`` is finished; forget the reference after its last item."""
        self._uses[path] -= 1
        if self._uses[path] <= 0:
            self._loaded.pop(path, None)
            del self._uses[path]

    def _load(self, path: Path) -> Reference:
        name, where = str(path), os.path.abspath(path)
        if is_voice_file(path):
            return Reference(key=f"voice:{where}", name=name, voice=load_voice(path))
        check_input_file(path)  # the local batch's message for a missing, empty or special file
        if self.shared:
            st = os.stat(where)
            return Reference(key=f"{where}:{st.st_size}:{st.st_mtime_ns}", name=name, path=where)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise AudioError(f"{path}: cannot be read ({e.strerror or e})") from None
        key = hashlib.sha256(data).hexdigest() + path.suffix.lower()
        return Reference(key=key, name=name, data=self._put(data))


def shared_probes(references: list[Path]) -> list[tuple[str, int, int]]:
    """What a worker must see for the references to be on a filesystem it shares with the
    driver: ``(absolute path, size, mtime_ns)`` of one reference in each folder (the first that
    exists). Empty when no reference exists."""
    probes = []
    for files in list(_by_folder(references).values())[:MAX_PROBED_FOLDERS]:
        for f in files:
            try:
                st = os.stat(f)
            except OSError:
                continue
            probes.append((os.path.abspath(f), st.st_size, st.st_mtime_ns))
            break
    return probes


def _by_folder(paths: list[Path]) -> dict[Path, list[Path]]:
    folders: dict[Path, list[Path]] = {}
    for p in paths:
        folders.setdefault(Path(os.path.abspath(p)).parent, []).append(p)
    return folders
