"""Audio out: whole files (wav, flac) and raw 16-bit PCM (``sv2tts.to_wav_bytes``), and the
header of a WAV streamed chunk by chunk."""
from __future__ import annotations

import struct

import numpy as np

import sv2tts

MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "pcm": "audio/pcm"}
_SOUNDFILE_FORMATS = {"wav": "WAV", "flac": "FLAC", "pcm": "RAW"}


def encode(wav: np.ndarray, fmt: str, sample_rate: int) -> bytes:
    """A response body: ``fmt`` is wav, flac or pcm (little-endian int16 samples, no header)."""
    return sv2tts.to_wav_bytes(wav, sample_rate, _SOUNDFILE_FORMATS[fmt])


def open_wav_header(sample_rate: int) -> bytes:
    """The 44-byte header of a mono 16-bit PCM WAV of unknown length (a stream): its sizes say
    0xFFFFFFFF, which players read as "until the end of the data"; raw PCM chunks follow."""
    return (b"RIFF" + struct.pack("<I", 0xFFFF_FFFF) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, 2 * sample_rate, 2, 16) +
            b"data" + struct.pack("<I", 0xFFFF_FFFF))
