"""Audio out: whole files (wav, flac), raw 16-bit PCM, and WAV streamed with an open header."""
from __future__ import annotations

import io
import struct

import numpy as np
import soundfile as sf

import sv2tts

MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "pcm": "audio/pcm"}


def pcm16(wav: np.ndarray, sample_rate: int = sv2tts.SAMPLE_RATE) -> bytes:
    """(n,) float32 in [-1, 1] -> n little-endian int16 samples, converted by libsndfile as in
    every file sv2tts writes (so streamed, raw and whole-file audio hold the same numbers)."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(wav, np.float32), sample_rate, format="RAW", subtype="PCM_16", endian="LITTLE")
    return buf.getvalue()


def wav_header(sample_rate: int, data_bytes: int | None = None) -> bytes:
    """The 44-byte header of a mono 16-bit PCM WAV. ``data_bytes=None``: length unknown (a
    stream): the sizes say 0xFFFFFFFF, which players read as "until the end of the data"."""
    data = 0xFFFF_FFFF if data_bytes is None else data_bytes
    riff = 0xFFFF_FFFF if data_bytes is None else 36 + data_bytes
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, 2 * sample_rate, 2, 16) +
            b"data" + struct.pack("<I", data))


def encode(wav: np.ndarray, fmt: str, sample_rate: int) -> bytes:
    """A whole response body: ``fmt`` is wav, flac or pcm."""
    if fmt == "flac":
        return sv2tts.to_wav_bytes(wav, sample_rate, "FLAC")
    data = pcm16(wav)
    return wav_header(sample_rate, len(data)) + data if fmt == "wav" else data
