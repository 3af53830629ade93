"""Pure numpy helpers of RTVC's vocoder: folding, cross-fade, mu-law, emphasis, fade-out.

All float maths is float64 as in RTVC (its generated samples are cast to float64 before
unfolding). Formulas: spec ``vocoder.md`` §3.3-3.5.
"""
from __future__ import annotations

import numpy as np

from ..core.dsp import de_emphasis


def fold_with_overlap(x: np.ndarray, target: int, overlap: int) -> np.ndarray:
    """Split x (1, total, C) into overlapping folds (F, target + 2*overlap, C).

    Fold i starts at i*(target + overlap); the tail is zero-padded. As RTVC, except that a
    sequence shorter than RTVC can fold (total <= overlap) still gives one fold.
    """
    if x.ndim != 3 or x.shape[0] != 1:
        raise ValueError(f"fold_with_overlap expects (1, total, C), got {x.shape}")
    total = x.shape[1]
    step, length = target + overlap, target + 2 * overlap
    num_folds = (total - overlap) // step
    extended = num_folds * step + overlap
    remaining = total - extended
    if remaining != 0:
        num_folds += 1
        x = np.concatenate([x, np.zeros((1, length - remaining, x.shape[2]), x.dtype)], axis=1)
    if num_folds < 1:  # total <= overlap: RTVC would return no fold at all
        num_folds = 1
    if x.shape[1] < length:
        x = np.concatenate([x, np.zeros((1, length - x.shape[1], x.shape[2]), x.dtype)], axis=1)
    return np.stack([x[0, i * step:i * step + length] for i in range(num_folds)])


def xfade_and_unfold(y: np.ndarray, target: int, overlap: int) -> np.ndarray:
    """Overlap-add folds y (F, L) float64 with RTVC's equal-power cross-fade -> (F*(L-overlap)+overlap,).

    ``target`` is recomputed from L as in RTVC. Every fold (first and last included) is faded in
    over its first ``overlap`` samples (of which the first overlap//2 + 1 are zeros) and faded out
    over its last ``overlap``. The input is not modified.
    """
    y = np.array(y, dtype=np.float64, copy=True)
    num_folds, length = y.shape
    target = length - 2 * overlap
    total = num_folds * (target + overlap) + overlap
    silence = overlap // 2
    fade = overlap - silence
    t = np.linspace(-1, 1, fade, dtype=np.float64)
    fade_in = np.concatenate([np.zeros(silence), np.sqrt(0.5 * (1 + t))])
    fade_out = np.concatenate([np.sqrt(0.5 * (1 - t)), np.zeros(silence)])
    if overlap > 0:
        y[:, :overlap] *= fade_in
        y[:, -overlap:] *= fade_out
    out = np.zeros(total, dtype=np.float64)
    for i in range(num_folds):
        start = i * (target + overlap)
        out[start:start + length] += y[i]
    return out


def label_2_float(x: np.ndarray, bits: int) -> np.ndarray:
    """Class labels 0..2**bits-1 -> floats in [-1, 1] (float64)."""
    return 2 * np.asarray(x) / (2 ** bits - 1.0) - 1.0


def float_2_label(x: np.ndarray, bits: int) -> np.ndarray:
    """Floats in [-1, 1] -> real-valued labels clipped to [0, 2**bits-1] (not rounded, as RTVC)."""
    x = (np.asarray(x) + 1.0) * (2 ** bits - 1) / 2
    return x.clip(0, 2 ** bits - 1)


def encode_mu_law(x: np.ndarray, mu: int) -> np.ndarray:
    """Mu-law compand x in [-1, 1] to labels 0..mu-1 (float64, as RTVC)."""
    mu = mu - 1
    x = np.asarray(x)
    fx = np.sign(x) * np.log(1 + mu * np.abs(x)) / np.log(1 + mu)
    return np.floor((fx + 1) / 2 * mu + 0.5)


def decode_mu_law(y: np.ndarray, mu: int, from_labels: bool = True) -> np.ndarray:
    """Inverse mu-law: sign(y) * ((1 + mu')**|y| - 1) / mu' with mu' = mu - 1.

    With ``from_labels`` y holds labels, first mapped to [-1, 1] with log2(mu) bits.
    """
    y = np.asarray(y)
    if from_labels:
        y = label_2_float(y, int(np.log2(mu)))
    mu = mu - 1
    return np.sign(y) / mu * ((1 + mu) ** np.abs(y) - 1)


def labels_to_samples(labels: np.ndarray, bits: int) -> np.ndarray:
    """Sampled class labels -> RTVC's fed-back/recorded sample values, float32 maths then float64.

    RTVC computes ``2 * k.float() / (2**bits - 1.) - 1.`` in float32 and casts to float64 later.
    """
    k = np.asarray(labels).astype(np.float32)
    return (np.float32(2) * k / np.float32(2 ** bits - 1) - np.float32(1)).astype(np.float64)


def to_waveform(samples: np.ndarray, *, batched: bool, target: int, overlap: int, wave_len: int,
                mu_law: bool = True, bits: int = 9, preemphasis: float | None = 0.97,
                fade_len: int = 4000) -> np.ndarray:
    """RTVC's post-processing of generated samples (F, L) float64 -> waveform (wave_len,) float64.

    Cross-fade unfold (batched) or row 0, mu-law decode, de-emphasis, truncation to wave_len and
    a linear fade to exactly 0 over the last ``fade_len`` samples. Where RTVC crashes
    (wave_len < fade_len) the fade covers the whole, shorter, waveform: min(fade_len, wave_len).
    """
    y = xfade_and_unfold(samples, target, overlap) if batched else np.asarray(samples[0], np.float64)
    if mu_law:
        y = decode_mu_law(y, 2 ** bits, from_labels=False)
    if preemphasis is not None:
        y = de_emphasis(y, preemphasis)
    y = np.array(y[:wave_len], dtype=np.float64)
    n = min(fade_len, len(y))
    if n > 0:
        y[len(y) - n:] *= np.linspace(1, 0, n)
    return y
