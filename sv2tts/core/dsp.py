"""Pure numpy signal helpers shared by the stages: emphasis, volume, webrtcvad silence trimming.

Defaults are RTVC's (16 kHz, pre-emphasis 0.97, -30 dBFS, webrtcvad mode 3 on 30 ms windows).
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000  # Hz, every stage of SV2TTS


def pre_emphasis(x: np.ndarray, k: float = 0.97) -> np.ndarray:
    """y[n] = x[n] - k x[n-1] (float64, zero initial state); x: (n,)."""
    x = np.asarray(x, dtype=np.float64)
    y = x.copy()
    y[1:] -= k * x[:-1]
    return y


def de_emphasis(x: np.ndarray, k: float = 0.97) -> np.ndarray:
    """y[n] = x[n] + k y[n-1] (float64, zero initial state), the inverse of ``pre_emphasis``; x: (n,).

    Computed per block of 256 samples: each block's zero-state response is one product with the
    (256, 256) matrix of k^(i - j), then the previous block's last output enters as k^(i + 1) y.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    size = max(1, min(_IIR_BLOCK, n))
    blocks = np.zeros(-(-n // size) * size)
    blocks[:n] = x
    blocks = blocks.reshape(-1, size)
    powers = k ** np.arange(size + 1, dtype=np.float64)
    lags = np.subtract.outer(np.arange(size), np.arange(size))
    y = blocks @ np.where(lags >= 0, powers[np.maximum(lags, 0)], 0.0).T  # zero-state responses
    last = y[:, -1].copy()
    for i in range(1, len(last)):  # each block's true last output
        last[i] += powers[size] * last[i - 1]
    y[1:] += last[:-1, None] * powers[1:]
    return y.reshape(-1)[:n]


_IIR_BLOCK = 256


def dilate(mask: np.ndarray, width: int) -> np.ndarray:
    """Binary dilation of a (n,) bool mask by ``width`` ones (scipy.ndimage.binary_dilation with
    np.ones(width)): out[i] = any(mask[i - (width - 1 - width // 2) : i + width // 2 + 1])."""
    after, before = width // 2, width - 1 - width // 2
    counts = np.cumsum(np.concatenate([[0], np.asarray(mask, dtype=np.int64), np.zeros(after, np.int64)]))
    hi = np.arange(len(mask)) + after + 1
    lo = np.maximum(np.arange(len(mask)) - before, 0)
    return counts[hi] > counts[lo]


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
    return dilate(mask, max_silence_windows + 1)


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
