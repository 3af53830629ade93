"""Audio I/O shared by every stage: any file -> mono float32, resampling, wav bytes out.

Pure functions. Decoding goes through soundfile (libsndfile: wav, flac, ogg, mp3 ...), read
in blocks and downmixed block by block, so a long multichannel file never exists in memory
at full width: the peak is one mono float32 copy (4 bytes per sample at the native rate).
"""
from __future__ import annotations

import base64
import contextlib
import io
import itertools
import logging
import math
import os
import stat
from pathlib import Path

import numpy as np
import soundfile as sf

from .dsp import SAMPLE_RATE
from .errors import AudioError, InputError
from .files import write_bytes_atomic

log = logging.getLogger(__name__)
READABLE_FORMATS = "WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF, AU (libsndfile)"
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 384000  # Hz accepted for input audio
MAX_SECONDS = 120.0  # default cap on a reference's decoded length (the encoder uses ~10 s of speech)
CODEC_SUFFIXES = (".m4a", ".mp4", ".aac", ".webm", ".mkv", ".wma")  # with the codecs extra (PyAV)
_BLOCK_FRAMES = 1 << 20  # frames decoded per block (~1 M)


def load_audio(path: str | os.PathLike, sample_rate: int | None = None, *,
               max_seconds: float | None = MAX_SECONDS) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32 in [-1, 1].

    With ``sample_rate`` the audio is resampled to that rate while it is decoded (RTVC's
    kaiser_best, block by block), so memory holds only the output: 4 bytes per output sample.
    Decoding stops after ``max_seconds`` (a warning says the file was cut; None: no limit), so
    neither a long file nor a header lying about its length costs more than that.
    Returns ``(wav, rate)``; wav is (n,) float32, channels averaged (as librosa.load).
    Raises AudioError naming the file when it is missing, not a regular file, empty, not audio,
    truncated, at a sample rate outside [4 kHz, 384 kHz] or holds non-finite samples.
    """
    path = check_input_file(path)
    cut = False
    try:
        with _decoder(path) as (rate, frames, blocks):
            check_sample_rate(rate, str(path))
            target = sample_rate or rate
            limit = None if max_seconds is None else int(max_seconds * rate)  # input samples
            estimate = int(np.ceil(max(frames, 0) * target / rate))  # a header may lie: capped
            out = _Collector(min(estimate, int(target * (max_seconds if max_seconds is not None else 3600)) + target))
            resampler = _StreamResampler(rate, target, out.add) if target != rate else None
            taken = 0
            for mono in blocks:
                if limit is not None and taken + len(mono) > limit:
                    mono, cut = mono[:limit - taken], True
                check_finite(mono, str(path))
                (resampler.add if resampler else out.add)(mono)
                taken += len(mono)
                if cut:
                    break
            if resampler:
                resampler.finish()
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as e:
        msg = str(e).replace(f"Error opening {str(path)!r}: ", "").strip().rstrip(".")
        hint = "" if _av() is not None else f" ({', '.join(CODEC_SUFFIXES)} need `pip install \"sv2tts[codecs]\"`)"
        raise AudioError(f"{path}: not a readable audio file or truncated ({msg}); readable formats: "
                         f"{READABLE_FORMATS}{hint}") from None
    wav = out.result()
    if len(wav) == 0:
        raise AudioError(f"{path}: contains no audio samples")
    if cut:
        log.warning("%s: longer than %g s: only the first %g s are used", path, max_seconds, max_seconds)
    return wav, int(target)


def check_input_file(path: str | os.PathLike) -> Path:
    """A path that exists and is a regular file with content, or AudioError saying what it is."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioError(f"{path}: file not found") from None
    except OSError as e:  # a symlink loop, a name too long, no permission ...
        raise AudioError(f"{path}: cannot be read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else
                "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise AudioError(f"{path}: is {kind}, not an audio file")
    if st.st_size == 0:
        raise AudioError(f"{path}: empty file")
    return path


def check_sample_rate(rate, name: str = "audio") -> int:
    """An int sample rate in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] Hz, else AudioError."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not \
            MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{name}: sample rate {rate!r} is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
    return int(rate)


@contextlib.contextmanager
def _decoder(path: Path):
    """(sample rate, estimated frames, iterator of mono float32 blocks) of an audio file:
    libsndfile, else FFmpeg through PyAV (the codecs extra) when it is installed."""
    try:
        f = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        av = _av()
        if av is None:
            raise
        try:
            container = av.open(str(path))
        except av.FFmpegError as e:
            raise ValueError(e.strerror or str(e)) from None
        with container:
            streams = [s for s in container.streams if s.type == "audio"]
            if not streams:
                raise ValueError("no audio stream") from None
            stream = streams[0]
            frames = int(stream.duration * stream.time_base * stream.rate) if stream.duration else 0
            yield stream.rate, frames, _av_blocks(av, container, stream)
        return
    with f:
        blocks = f.blocks(blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True)
        yield f.samplerate, f.frames, (b.mean(axis=1, dtype=np.float32) if b.shape[1] > 1 else b[:, 0]
                                       for b in blocks)


def _av():
    """The PyAV module (the codecs extra), or None."""
    try:
        import av
    except ImportError:
        return None
    return av


def _av_blocks(av, container, stream):
    """Mono float32 blocks of about _BLOCK_FRAMES samples decoded by FFmpeg (channels averaged)."""
    to_float = av.AudioResampler(format="fltp")  # planar float32, same layout and rate
    pending, size = [], 0
    try:
        for frame in itertools.chain(container.decode(stream), [None]):  # None flushes the resampler
            for f in to_float.resample(frame):
                x = f.to_ndarray()  # (channels, n)
                pending.append(x.mean(axis=0, dtype=np.float32) if x.shape[0] > 1 else x[0])
                size += pending[-1].size
            if size >= _BLOCK_FRAMES or (frame is None and pending):
                yield np.concatenate(pending)
                pending, size = [], 0
    except av.FFmpegError as e:
        raise ValueError(e.strerror or str(e)) from None


class _Collector:
    """Appends float32 chunks into one preallocated array (grows if the size was an estimate)."""

    def __init__(self, size: int):
        self.data = np.empty(size, dtype=np.float32)
        self.n = 0

    def add(self, chunk: np.ndarray) -> None:
        if self.n + len(chunk) > len(self.data):
            self.data = np.concatenate([self.data[:self.n], np.empty(len(chunk) + self.n, np.float32)])
        self.data[self.n:self.n + len(chunk)] = chunk
        self.n += len(chunk)

    def result(self) -> np.ndarray:
        return self.data[:self.n]


class _StreamResampler:
    """Block-wise ``resample`` that gives the same samples as resampling the whole signal.

    The kaiser_best filter is finite (64 zero crossings), so each chunk is resampled with
    enough input context on both sides, and chunks start at multiples of the rate period
    (orig/gcd input samples = target/gcd output samples) so their output grids align.
    """

    def __init__(self, orig: int, target: int, emit):
        g = math.gcd(orig, target)
        self.p_in, self.p_out = orig // g, target // g
        ratio = target / orig
        self.context = self.p_in * math.ceil((64 / min(ratio, 1.0) + 16) / self.p_in)
        self.chunk = self.p_in * max(1, _BLOCK_FRAMES // self.p_in)
        self.orig, self.target, self.emit = orig, target, emit
        self.buf = np.empty(0, np.float32)  # input from (pos - left) on
        self.left = 0  # context samples kept before the next chunk start
        self.total_in = 0

    def add(self, x: np.ndarray) -> None:
        self.buf = np.concatenate([self.buf, x])
        self.total_in += len(x)
        while len(self.buf) - self.left >= self.chunk + self.context:
            self._emit(self.chunk, final=False)

    def finish(self) -> None:
        n_out = math.ceil(self.total_in * self.target / self.orig)  # librosa fix=True length
        done = (self.total_in - (len(self.buf) - self.left)) * self.p_out // self.p_in
        if n_out > done:
            self._emit(len(self.buf) - self.left, final=True, n_out=n_out - done)

    def _emit(self, n_in: int, final: bool, n_out: int | None = None) -> None:
        seg = self.buf if final else self.buf[: self.left + n_in + self.context]
        y = _resample_array(seg, self.orig, self.target)
        first = self.left * self.p_out // self.p_in
        count = n_out if final else n_in * self.p_out // self.p_in
        piece = y[first:first + count]
        if len(piece) < count:  # librosa pads the last samples with zeros (fix=True)
            piece = np.concatenate([piece, np.zeros(count - len(piece), np.float32)])
        self.emit(piece)
        keep = min(self.context, self.left + n_in)
        self.buf = self.buf[self.left + n_in - keep:]
        self.left = keep


def _resample_array(wav: np.ndarray, orig: int, target: int) -> np.ndarray:
    import resampy

    if int(len(wav) * target / orig) < 1:
        return np.zeros(0, np.float32)
    return resampy.resample(wav, orig, target, filter="kaiser_best", axis=-1).astype(np.float32, copy=False)


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
    """Resample as RTVC does: librosa.resample(res_type="kaiser_best", fix=True, scale=False).

    wav: (n,) float32 at ``source_rate`` Hz -> (ceil(n * target / source),) float32.
    """
    if source_rate == target_rate:
        return wav
    out = _Collector(math.ceil(len(wav) * target_rate / source_rate))
    resampler = _StreamResampler(source_rate, target_rate, out.add)
    resampler.add(np.asarray(wav, dtype=np.float32))
    resampler.finish()
    return out.result()


def to_wav_bytes(wav: np.ndarray, sample_rate: int = SAMPLE_RATE, fmt: str = "WAV") -> bytes:
    """Encode a float waveform as 16-bit PCM in memory: a WAV file (default), FLAC, or "RAW"
    (the bare little-endian samples, e.g. to stream them). libsndfile converts the samples in
    every case, so WAV and RAW hold the same numbers as files written by ``write_audio``."""
    check_sample_rate(sample_rate, "output")
    check_finite(np.asarray(wav), "output")
    buf = io.BytesIO()
    sf.write(buf, np.asarray(wav, dtype=np.float32), sample_rate, format=fmt, subtype="PCM_16",
             endian="LITTLE" if fmt == "RAW" else "FILE")
    return buf.getvalue()


def to_base64(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
    """The WAV bytes of ``wav`` as an ASCII base64 string (what a web page puts in a data: URL)."""
    return base64.b64encode(to_wav_bytes(wav, sample_rate)).decode("ascii")


OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC"}  # output suffix -> libsndfile format (16-bit PCM)


def write_audio(path: str | os.PathLike, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write ``wav`` to ``path`` atomically (temporary file + rename); format from the suffix.

    Supported suffixes: .wav, .flac (16-bit PCM). Creates missing parent folders.
    """
    path = Path(path)
    write_bytes_atomic(path, encode_audio(path, wav, sample_rate))
    return path


def encode_audio(path: str | os.PathLike, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """The bytes ``write_audio(path, wav)`` writes: 16-bit WAV or FLAC, from ``path``'s suffix."""
    suffix = Path(path).suffix
    fmt = OUTPUT_FORMATS.get(suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unsupported output format {suffix!r} (use .wav or .flac)")
    return to_wav_bytes(wav, sample_rate, fmt)


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early (before any heavy work) when ``path`` cannot be written: bad suffix, a
    directory, or a parent that cannot be created or written. Creates missing parents."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise InputError(f"{path}: unsupported output format {path.suffix!r} (use .wav or .flac)")
    if path.is_dir():
        raise InputError(f"{path}: is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{path}: cannot create the output folder ({e.strerror or e})") from None
    if not os.access(path.parent, os.W_OK):
        raise InputError(f"{path.parent}: output folder is not writable")
    return path
