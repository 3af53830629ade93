"""Audio I/O shared by every stage: any file -> mono float32, resampling, wav bytes out.

Pure functions. Decoding goes through soundfile (libsndfile: wav, flac, ogg, mp3 ...), read
in blocks and downmixed block by block, so a long multichannel file never exists in memory
at full width: the peak is one mono float32 copy (4 bytes per sample at the native rate).
"""
from __future__ import annotations

import base64
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError, InputError

SAMPLE_RATE = 16000  # Hz, every stage of SV2TTS
_BLOCK_FRAMES = 1 << 20  # frames decoded per block (~1 M)


def load_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32 in [-1, 1] at its native rate.

    Returns ``(wav, sample_rate)``; wav is (n,) float32, channels averaged (as librosa.load).
    Raises AudioError naming the file when it is missing, a directory, empty, not audio,
    truncated or holds non-finite samples.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")
    try:
        with sf.SoundFile(path) as f:
            sample_rate = f.samplerate
            wav = np.empty(max(f.frames, 0), dtype=np.float32)  # preallocated: no second copy
            filled = 0
            for block in f.blocks(blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True):
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                if filled + len(mono) > len(wav):  # frame count was an estimate
                    wav = np.concatenate([wav[:filled], np.empty(len(mono) + len(wav), np.float32)])
                wav[filled:filled + len(mono)] = mono
                filled += len(mono)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        msg = str(e).replace(f"Error opening {str(path)!r}: ", "").strip().rstrip(".")
        raise AudioError(f"{path}: not a readable audio file or truncated ({msg})") from None
    wav = wav[:filled]
    if len(wav) == 0:
        raise AudioError(f"{path}: contains no audio samples")
    check_finite(wav, str(path))
    return wav, int(sample_rate)


def check_finite(wav: np.ndarray, name: str) -> None:
    """Raise AudioError when ``wav`` holds NaN or inf samples."""
    if not np.isfinite(wav).all():
        raise AudioError(f"{name}: audio contains NaN or infinite samples")


def as_mono_float32(wav: np.ndarray, name: str = "audio array") -> np.ndarray:
    """Validate an in-memory waveform: 1-D (or (n, channels) / (channels, n), averaged), finite."""
    wav = np.asarray(wav)
    if wav.ndim == 2:
        axis = 0 if wav.shape[0] < wav.shape[1] else 1
        wav = wav.mean(axis=axis)
    if wav.ndim != 1:
        raise InputError(f"{name}: expected a 1-D waveform, got shape {wav.shape}")
    if not np.issubdtype(wav.dtype, np.floating):
        raise InputError(f"{name}: expected float samples in [-1, 1], got dtype {wav.dtype}")
    if len(wav) == 0:
        raise AudioError(f"{name}: contains no audio samples")
    check_finite(wav, name)
    return wav.astype(np.float32, copy=False)


def resample(wav: np.ndarray, source_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample as RTVC does: librosa.resample with res_type "kaiser_best" (resampy), fix=True.

    wav: (n,) float32 at ``source_rate`` Hz -> (ceil(n * target / source),) float32.
    """
    if source_rate == target_rate:
        return wav
    import librosa

    return librosa.resample(
        wav, orig_sr=source_rate, target_sr=target_rate, res_type="kaiser_best", fix=True, scale=False
    ).astype(np.float32, copy=False)


def to_wav_bytes(wav: np.ndarray, sample_rate: int = SAMPLE_RATE, fmt: str = "WAV") -> bytes:
    """Encode a float waveform as a 16-bit PCM file in memory (WAV by default, or FLAC)."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(wav, dtype=np.float32), sample_rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def to_base64(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
    """The WAV bytes of ``wav`` as an ASCII base64 string (what a web page puts in a data: URL)."""
    return base64.b64encode(to_wav_bytes(wav, sample_rate)).decode("ascii")


def write_audio(path: str | os.PathLike, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write ``wav`` to ``path`` atomically (temporary file + rename); format from the suffix.

    Supported suffixes: .wav, .flac (16-bit PCM). Creates missing parent folders.
    """
    path = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unsupported output format {path.suffix!r} (use .wav or .flac)")
    data = to_wav_bytes(wav, sample_rate, fmt)
    write_bytes_atomic(path, data)
    return path


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as e:
        raise InputError(f"{path}: cannot write here ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
