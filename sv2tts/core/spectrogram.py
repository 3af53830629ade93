"""RTVC's mel format, shared by the synthesizer (its output) and the vocoders (their input).

Pure numpy: ``MelConfig`` (RTVC's synthesizer hparams for audio), mel and linear spectrograms,
``validate_mel`` for any mel crossing a public boundary, and Griffin-Lim inversion. Internally
float64 as in RTVC (complex128 STFT); public results are float32. Mels are mel-major (80, T)
on RTVC's symmetric scale [-4, 4]. The STFT and the mel filterbank are librosa's, computed here
(equal to librosa's to float rounding; importing librosa costs ~1.5 s); librosa's istft is
used for Griffin-Lim.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .dsp import SAMPLE_RATE, de_emphasis, pre_emphasis
from .errors import InputError
from .runtime import check_seed


@dataclass(frozen=True)
class MelConfig:
    """RTVC's signal-processing hparams (16 kHz, 80-band magnitude mel, symmetric [-4, 4])."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 800
    hop_size: int = 200  # samples (12.5 ms)
    win_size: int = 800  # samples (50 ms)
    num_mels: int = 80
    fmin: float = 55.0  # Hz
    fmax: float = 7600.0  # Hz
    min_level_db: float = -100.0
    ref_level_db: float = 20.0
    max_abs_value: float = 4.0
    preemphasis: float = 0.97
    power: float = 1.5  # Griffin-Lim magnitude exponent
    griffin_lim_iters: int = 60


DEFAULT_MEL = MelConfig()
_SCALE_WARN = 2.0  # warn when max |mel| exceeds this many times max_abs_value


def validate_mel(mel, cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    """Check a mel and return it as C-contiguous float32 (num_mels, T).

    InputError for a non-array, wrong shape or orientation, non-finite values or no frame;
    a UserWarning when the values are far outside RTVC's [-max_abs, max_abs] scale.
    Accepts anything array-like (a torch tensor on any device too).
    """
    num_mels, max_abs = cfg.num_mels, cfg.max_abs_value
    if hasattr(mel, "detach"):  # a torch tensor
        mel = mel.detach().cpu().numpy()
    try:
        arr = np.asarray(mel)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        raise InputError(f"mel: expected a numpy array of shape ({num_mels}, T), got {type(mel).__name__}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"mel: expected a real float array of shape ({num_mels}, T), got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise InputError(f"mel: expected shape ({num_mels}, T) (mel-major), got {arr.ndim}-D shape {arr.shape}")
    if arr.shape[0] != num_mels:
        if arr.shape[1] == num_mels:
            raise InputError(f"mel: got shape {arr.shape}, which looks like (T, {num_mels}); "
                             f"expected ({num_mels}, T) (mel-major): pass mel.T")
        raise InputError(f"mel: expected shape ({num_mels}, T), got {arr.shape}")
    if arr.shape[1] == 0:
        raise InputError(f"mel: empty (shape {arr.shape}); expected ({num_mels}, T) with T >= 1")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise InputError("mel: contains NaN or inf values")
    peak = float(np.abs(arr).max())
    if peak > _SCALE_WARN * max_abs:
        warnings.warn(f"mel: values reach {peak:.3g}, far outside RTVC's scale [-{max_abs:g}, {max_abs:g}] "
                      f"(synthesizer output); the audio will be distorted", UserWarning, stacklevel=3)
    return arr


@lru_cache(maxsize=8)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                fmax: float | None = None) -> np.ndarray:
    """Slaney-style mel filterbank (n_mels, n_fft // 2 + 1) float32, read-only (cached):
    librosa.filters.mel with htk=False and norm="slaney" (triangles on the Slaney mel scale,
    each of unit area in Hz)."""
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))  # Hz
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising, falling = -ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    weights = (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)
    weights.setflags(write=False)
    return weights


_MEL_HZ_STEP = 200.0 / 3  # Slaney scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above
_MEL_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    log_part = 1000.0 / _MEL_HZ_STEP + np.log(np.maximum(hz, 1000.0) / 1000.0) / _MEL_LOG_STEP
    return np.where(hz >= 1000.0, log_part, hz / _MEL_HZ_STEP)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    knee = 1000.0 / _MEL_HZ_STEP
    return np.where(mel >= knee, 1000.0 * np.exp(_MEL_LOG_STEP * (mel - knee)), mel * _MEL_HZ_STEP)


def stft(y: np.ndarray, n_fft: int, hop: int, win_length: int | None = None, center: bool = True) -> np.ndarray:
    """Short-time Fourier transform (n_fft // 2 + 1, frames): librosa.stft with a periodic Hann
    window of ``win_length`` samples (default n_fft) centred in n_fft and, with ``center``,
    n_fft // 2 zeros padded at each end.

    Computed in float64 (the window is float64, as librosa's); complex64 for float32 input,
    complex128 for float64. frames = 1 + (len + (n_fft if center else 0) - n_fft) // hop.
    """
    y = np.asarray(y)
    if center:
        y = np.pad(y, n_fft // 2)
    if len(y) < n_fft:
        raise InputError(f"audio of {len(y)} samples is shorter than one {n_fft}-sample frame")
    win_length = n_fft if win_length is None else win_length
    window = np.zeros(n_fft)
    offset = (n_fft - win_length) // 2
    window[offset:offset + win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop]  # (frames, n_fft), a view
    out_type = np.complex64 if y.dtype == np.float32 else np.complex128
    spec = np.empty((n_fft // 2 + 1, len(frames)), dtype=out_type)
    for start in range(0, len(frames), _STFT_BLOCK):  # bounded float64 temporaries
        block = frames[start:start + _STFT_BLOCK]
        spec[:, start:start + len(block)] = np.fft.rfft(block * window, axis=1).T
    return spec


_STFT_BLOCK = 1024  # frames transformed at a time


def mel_basis(cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    """Slaney mel filterbank (num_mels, n_fft // 2 + 1) float32 of ``cfg``, read-only (cached)."""
    return mel_filters(cfg.sample_rate, cfg.n_fft, cfg.num_mels, cfg.fmin, cfg.fmax)


@lru_cache(maxsize=8)
def _inv_mel_basis(cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    inv = np.linalg.pinv(mel_basis(cfg))
    inv.setflags(write=False)
    return inv


def _stft(y: np.ndarray, cfg: MelConfig) -> np.ndarray:
    return stft(y, cfg.n_fft, cfg.hop_size, cfg.win_size)


def _istft(spec: np.ndarray, cfg: MelConfig) -> np.ndarray:
    import librosa

    return librosa.istft(stft_matrix=spec, hop_length=cfg.hop_size, win_length=cfg.win_size,
                         n_fft=cfg.n_fft, window="hann", center=True)


def _amp_to_db(x: np.ndarray, cfg: MelConfig) -> np.ndarray:
    min_level = np.exp(cfg.min_level_db / 20 * np.log(10))
    return 20 * np.log10(np.maximum(min_level, x)) - cfg.ref_level_db


def _db_to_amp(x: np.ndarray) -> np.ndarray:
    return np.power(10.0, x * 0.05)


def _normalize(S: np.ndarray, cfg: MelConfig) -> np.ndarray:
    m = cfg.max_abs_value
    return np.clip((2 * m) * ((S - cfg.min_level_db) / (-cfg.min_level_db)) - m, -m, m)


def _denormalize(D: np.ndarray, cfg: MelConfig) -> np.ndarray:
    m = cfg.max_abs_value
    return ((np.clip(D, -m, m) + m) * -cfg.min_level_db / (2 * m)) + cfg.min_level_db


def _check_wav(wav: np.ndarray) -> np.ndarray:
    wav = np.asarray(wav)
    if wav.ndim != 1 or wav.size == 0:
        raise InputError(f"wav: expected a non-empty 1-D waveform, got shape {wav.shape}")
    if not np.issubdtype(wav.dtype, np.floating):
        raise InputError(f"wav: expected float samples, got dtype {wav.dtype}")
    if not np.isfinite(wav).all():
        raise InputError("wav: contains NaN or infinite samples")
    return wav


def linearspectrogram(wav: np.ndarray, cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    """wav: (n,) float at 16 kHz -> (n_fft//2+1, 1 + n // hop) float32, RTVC scale."""
    D = _stft(pre_emphasis(_check_wav(wav), cfg.preemphasis), cfg)
    S = _amp_to_db(np.abs(D), cfg)
    return _normalize(S, cfg).astype(np.float32)


def melspectrogram(wav: np.ndarray, cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    """wav: (n,) float at 16 kHz -> mel (80, 1 + n // 200) float32 in [-4, 4], RTVC scale.

    Pre-emphasis 0.97, |STFT| (n_fft 800, hop 200, Hann, zero padding), Slaney mel,
    20 log10(max(1e-5, .)) - 20 dB, symmetric normalisation with clipping.
    """
    D = _stft(pre_emphasis(_check_wav(wav), cfg.preemphasis), cfg)
    S = _amp_to_db(np.dot(mel_basis(cfg), np.abs(D)), cfg)
    return _normalize(S, cfg).astype(np.float32)


def mel_to_linear(mel: np.ndarray, cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    """mel (80, T) RTVC scale -> linear magnitude (401, T) float64 (before the 1.5 power)."""
    S = _db_to_amp(_denormalize(validate_mel(mel, cfg), cfg) + cfg.ref_level_db)
    return np.maximum(1e-10, np.dot(_inv_mel_basis(cfg), S))


def griffin_lim(mel: np.ndarray, *, n_iter: int = DEFAULT_MEL.griffin_lim_iters,
                seed: int | None = None, cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    """Invert a mel (80, T) to a waveform ((T - 1) * 200,) float32 with Griffin-Lim.

    As RTVC's inv_mel_spectrogram: magnitude ** 1.5, `n_iter` iterations from random phases
    exp(2j pi U), U = np.random.RandomState(seed).rand(401, T) (a private generator: RTVC
    uses numpy's global one, seeded the same way it gives the same numbers), then
    de-emphasis.
    """
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 0:
        raise InputError(f"n_iter: expected an int >= 0, got {n_iter!r}")
    S = mel_to_linear(mel, cfg) ** cfg.power
    rng = np.random.RandomState(check_seed(seed))
    angles = np.exp(2j * np.pi * rng.rand(*S.shape))
    S_complex = np.abs(S).astype(np.complex128)
    y = _istft(S_complex * angles, cfg)
    for _ in range(n_iter):
        angles = np.exp(1j * np.angle(_stft(y, cfg)))
        y = _istft(S_complex * angles, cfg)
    return de_emphasis(y, cfg.preemphasis).astype(np.float32)
