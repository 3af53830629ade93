"""Pure numpy signal helpers shared by the stages: emphasis, volume, webrtcvad silence trimming.

Defaults are RTVC's (16 kHz, pre-emphasis 0.97, -30 dBFS, webrtcvad mode 3 on 30 ms windows).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import binary_dilation
from scipy.signal import lfilter

SAMPLE_RATE = 16000  # Hz, every stage of SV2TTS


def pre_emphasis(x: np.ndarray, k: float = 0.97) -> np.ndarray:
    """y[n] = x[n] - k x[n-1] (float64, zero initial state)."""
    return lfilter([1.0, -k], [1.0], np.asarray(x, dtype=np.float64))


def de_emphasis(x: np.ndarray, k: float = 0.97) -> np.ndarray:
    """y[n] = x[n] + k y[n-1] (float64, zero initial state), the inverse of ``pre_emphasis``."""
    return lfilter([1.0], [1.0, -k], np.asarray(x, dtype=np.float64))


def normalize_volume(wav: np.ndarray, target_dbfs: float = -30.0) -> np.ndarray:
    """Raise the level of ``wav`` to ``target_dbfs`` (increase only; louder audio is untouched).

    wav: (n,) float32 in [-1, 1]. All-zero input would give NaN in RTVC; here it is returned as is.
    """
    mean_square = float(np.mean(np.square(wav)))  # in the input's dtype, as RTVC
    if mean_square == 0.0:
        return wav
    change_db = target_dbfs - 10 * np.log10(mean_square)
    if change_db < 0:
        return wav
    return wav * np.asarray(10 ** (change_db / 20), dtype=wav.dtype)


def voiced_mask(wav: np.ndarray, *, sample_rate: int = SAMPLE_RATE, window_ms: int = 30,
                moving_average_width: int = 8, max_silence_windows: int = 6, mode: int = 3) -> np.ndarray:
    """Per-window speech mask (n_windows,) bool: webrtcvad flags, moving average, dilation.

    ``wav`` length must be a multiple of the window (480 samples at 16 kHz and 30 ms).
    """
    import webrtcvad

    window = window_ms * sample_rate // 1000
    vad = webrtcvad.Vad(mode=mode)
    n = len(wav) // window
    flags = np.zeros(n, dtype=np.float64)
    block = 2048  # windows converted at a time (bounded memory on long audio)
    for b in range(0, n, block):
        chunk = wav[b * window:min(n, b + block) * window]
        # RTVC converts with a wrapping int16 cast (no clipping) of round(x * 32767).
        pcm = np.round(chunk * 32767).astype(np.int64).astype("<i2").tobytes()
        for i in range(len(chunk) // window):
            flags[b + i] = vad.is_speech(pcm[i * window * 2:(i + 1) * window * 2], sample_rate=sample_rate)
    width = moving_average_width
    padded = np.concatenate([np.zeros((width - 1) // 2), flags, np.zeros(width // 2)])
    sums = np.cumsum(np.concatenate([[0.0], padded]))
    average = (sums[width:] - sums[:-width]) / width
    mask = np.round(average).astype(bool)  # half-to-even: 4/8 -> False
    return binary_dilation(mask, np.ones(max_silence_windows + 1))


def trim_long_silences(wav: np.ndarray, *, sample_rate: int = SAMPLE_RATE, window_ms: int = 30,
                       **vad_options) -> np.ndarray:
    """Remove silences longer than ~6 windows (RTVC's webrtcvad trimming, mode 3).

    wav: (n,) float at 16 kHz -> (m,) same dtype, m <= n a multiple of the window; may be empty.
    vad_options: the other arguments of ``voiced_mask``.
    """
    window = window_ms * sample_rate // 1000
    wav = wav[: len(wav) - len(wav) % window]
    mask = voiced_mask(wav, sample_rate=sample_rate, window_ms=window_ms, **vad_options)
    return wav[np.repeat(mask, window)]
