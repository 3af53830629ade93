"""Uploaded files -> a private temporary folder, deleted when the request's work ends."""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from fastapi import UploadFile

from .errors import ApiError

MAX_FILES = 8
_SUFFIX = re.compile(r"\.[a-z0-9]{1,5}")
_CHUNK = 1 << 20


class Uploads:
    """The request's files saved as ``0.wav``, ``1.flac`` ... in a new temporary folder.

    ``names`` maps each saved path to the name the client gave, for error messages;
    ``remove()`` deletes the folder (idempotent)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="sv2tts-upload-"))
        self.paths: list[Path] = []
        self.names: dict[str, str] = {}

    async def save(self, files: list[UploadFile], field: str) -> list[Path]:
        if len(files) > MAX_FILES:
            raise ApiError(400, f"{field}: at most {MAX_FILES} files per request", "too_many_files")
        for file in files:
            name = Path(file.filename or "upload").name[:100] or "upload"
            suffix = Path(name).suffix.lower()
            path = self.folder / f"{len(self.paths)}{suffix if _SUFFIX.fullmatch(suffix) else ''}"
            with open(path, "wb") as out:
                while chunk := await file.read(_CHUNK):
                    out.write(chunk)
            self.paths.append(path)
            self.names[str(path)] = name
        return self.paths

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
