"""The synthesizer's audio maths (RTVC synthesizer/audio.py): mel spectrogram and Griffin-Lim.

Pure numpy functions. Internally float64 as in RTVC (scipy lfilter, complex128 STFT); public
results are float32. Mels are mel-major (80, T) on RTVC's symmetric scale [-4, 4].
librosa is called with keyword arguments only and an explicit pad_mode (works on 0.10+).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import lfilter

from ..errors import InputError
from .config import MelConfig

DEFAULT_MEL = MelConfig()


def preemphasis(wav: np.ndarray, k: float = DEFAULT_MEL.preemphasis) -> np.ndarray:
    """y[n] = x[n] - k x[n-1] (float64)."""
    return lfilter([1.0, -k], [1.0], np.asarray(wav, dtype=np.float64))


def inv_preemphasis(wav: np.ndarray, k: float = DEFAULT_MEL.preemphasis) -> np.ndarray:
    """y[n] = x[n] + k y[n-1] (float64), the inverse of `preemphasis`."""
    return lfilter([1.0], [1.0, -k], np.asarray(wav, dtype=np.float64))


@lru_cache(maxsize=8)
def mel_basis(cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    """Slaney mel filterbank (num_mels, n_fft // 2 + 1) float32, read-only (cached)."""
    import librosa

    basis = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.num_mels,
                                fmin=cfg.fmin, fmax=cfg.fmax, htk=False, norm="slaney")
    basis = np.asarray(basis, dtype=np.float32)
    basis.setflags(write=False)
    return basis


@lru_cache(maxsize=8)
def _inv_mel_basis(cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    inv = np.linalg.pinv(mel_basis(cfg))
    inv.setflags(write=False)
    return inv


def _stft(y: np.ndarray, cfg: MelConfig) -> np.ndarray:
    import librosa

    return librosa.stft(y=y, n_fft=cfg.n_fft, hop_length=cfg.hop_size, win_length=cfg.win_size,
                        window="hann", center=True, pad_mode="constant")


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
    D = _stft(preemphasis(_check_wav(wav), cfg.preemphasis), cfg)
    S = _amp_to_db(np.abs(D), cfg)
    return _normalize(S, cfg).astype(np.float32)


def melspectrogram(wav: np.ndarray, cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    """wav: (n,) float at 16 kHz -> mel (80, 1 + n // 200) float32 in [-4, 4], RTVC scale.

    Pre-emphasis 0.97, |STFT| (n_fft 800, hop 200, Hann, zero padding), Slaney mel,
    20 log10(max(1e-5, .)) - 20 dB, symmetric normalisation with clipping.
    """
    D = _stft(preemphasis(_check_wav(wav), cfg.preemphasis), cfg)
    S = _amp_to_db(np.dot(mel_basis(cfg), np.abs(D)), cfg)
    return _normalize(S, cfg).astype(np.float32)


def _check_mel(mel: np.ndarray, cfg: MelConfig) -> np.ndarray:
    mel = np.asarray(mel)
    if mel.ndim != 2 or mel.shape[0] != cfg.num_mels or mel.shape[1] == 0:
        raise InputError(f"mel: expected shape ({cfg.num_mels}, T) with T > 0, got {mel.shape}")
    if not np.issubdtype(mel.dtype, np.floating) or not np.isfinite(mel).all():
        raise InputError("mel: expected finite float values")
    return mel


def mel_to_linear(mel: np.ndarray, cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    """mel (80, T) RTVC scale -> linear magnitude (401, T) float64 (before the 1.5 power)."""
    S = _db_to_amp(_denormalize(_check_mel(mel, cfg), cfg) + cfg.ref_level_db)
    return np.maximum(1e-10, np.dot(_inv_mel_basis(cfg), S))


def griffin_lim(mel: np.ndarray, *, n_iter: int = DEFAULT_MEL.griffin_lim_iters,
                seed: int | None = None, cfg: MelConfig = DEFAULT_MEL) -> np.ndarray:
    """Invert a mel (80, T) to a waveform ((T - 1) * 200,) float32 with Griffin-Lim.

    As RTVC's inv_mel_spectrogram: magnitude ** 1.5, `n_iter` iterations from random phases
    exp(2j pi U), U = np.random.RandomState(seed).rand(401, T) (a private generator: RTVC
    uses numpy's global one, seeded the same way it gives the same numbers), then
    de-emphasis.
    """
    if n_iter < 0:
        raise InputError(f"n_iter must be >= 0, got {n_iter}")
    S = mel_to_linear(mel, cfg) ** cfg.power
    rng = np.random.RandomState(seed)
    angles = np.exp(2j * np.pi * rng.rand(*S.shape))
    S_complex = np.abs(S).astype(np.complex128)
    y = _istft(S_complex * angles, cfg)
    for _ in range(n_iter):
        angles = np.exp(1j * np.angle(_stft(y, cfg)))
        y = _istft(S_complex * angles, cfg)
    return inv_preemphasis(y, cfg.preemphasis).astype(np.float32)
