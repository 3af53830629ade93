"""Saved voices: ``<id>.npy`` (the format `sv2tts embed` writes) + ``<id>.json`` in one folder.

Ids are random (``v_`` + 16 hex digits) and never paths. Every call reads the folder, so
several server processes can share it; files are written atomically and the ``.npy`` last,
so a voice exists exactly when its ``.npy`` does.
"""
from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import sv2tts

from .errors import ApiError

_ID = re.compile(r"v_[0-9a-f]{16}")
MAX_NAME_CHARS = 100


class VoiceStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def create(self, name: str, embedding: np.ndarray, speech_seconds: float | None) -> dict:
        """Store a (256,) embedding under a new id -> its description."""
        name = check_name(name)
        voice_id = "v_" + secrets.token_hex(8)
        meta = {"id": voice_id, "name": name,
                "speech_seconds": None if speech_seconds is None else round(speech_seconds, 2),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        sv2tts.write_bytes_atomic(self.folder / f"{voice_id}.json", json.dumps(meta).encode())
        sv2tts.save_voice(self.folder / f"{voice_id}.npy", embedding)
        return meta

    def path(self, voice_id: str) -> Path:
        """The .npy of a voice; 404 when there is none (or the id is not one of ours)."""
        path = self.folder / f"{voice_id}.npy"
        if not isinstance(voice_id, str) or not _ID.fullmatch(voice_id) or not path.is_file():
            raise ApiError(404, f"voice {str(voice_id)[:80]!r} not found: list voices with GET /v1/voices, "
                                f"create one with POST /v1/voices", "voice_not_found")
        return path

    def get(self, voice_id: str) -> dict:
        return self._describe(self.path(voice_id))

    def list(self) -> list[dict]:
        voices = [self._describe(p) for p in self.folder.glob("v_*.npy") if _ID.fullmatch(p.stem)]
        return sorted(voices, key=lambda v: (v["created"], v["id"]))

    def delete(self, voice_id: str) -> None:
        path = self.path(voice_id)
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)

    @staticmethod
    def _describe(npy: Path) -> dict:
        try:
            return json.loads(npy.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):  # a voice copied in by hand: no sidecar
            return {"id": npy.stem, "name": npy.stem, "speech_seconds": None, "created": ""}


def check_name(name: str) -> str:
    name = " ".join(str(name).split())
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise ApiError(400, f"name: expected 1 to {MAX_NAME_CHARS} printable characters", "invalid_name")
    return name
