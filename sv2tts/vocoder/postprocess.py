"""Pure numpy helpers of RTVC's vocoder: folding, cross-fade, mu-law, emphasis, fade-out.

All float maths is float64 as in RTVC (its generated samples are cast to float64 before
unfolding). Formulas: spec ``vocoder.md`` §3.3-3.5.
"""
from __future__ import annotations

import numpy as np

from ..core.dsp import de_emphasis


class Folds:
    """RTVC's fold of a sequence of ``total`` samples into overlapping rows of target + 2*overlap:
    fold i starts at i*(target + overlap), the tail is zero-padded. Rows can be taken a few at a
    time (the vocoder generates them in groups). As RTVC, except that a sequence shorter than
    RTVC can fold (total <= overlap) still gives one fold."""

    def __init__(self, total: int, target: int, overlap: int) -> None:
        self.step, self.length = target + overlap, target + 2 * overlap
        count = (total - overlap) // self.step
        self.count = max(1, count + (total - (count * self.step + overlap) != 0))

    @classmethod
    def single(cls, total: int) -> "Folds":
        """One row: the whole sequence (unbatched generation)."""
        folds = cls(total, total, 0)
        folds.count, folds.step, folds.length = 1, total, total
        return folds

    def take(self, x: np.ndarray, first: int, last: int, offset: int = 0) -> np.ndarray:
        """Rows [first, last) -> (last - first, length, C), zero-padded; x (1, n, C) holds the
        sequence's samples from ``offset`` on."""
        rows = np.zeros((last - first, self.length, x.shape[2]), x.dtype)
        for i in range(first, last):
            piece = x[0, i * self.step - offset:i * self.step - offset + self.length]
            rows[i - first, :len(piece)] = piece
        return rows


def fold_with_overlap(x: np.ndarray, target: int, overlap: int) -> np.ndarray:
    """Split x (1, total, C) into all its overlapping folds (F, target + 2*overlap, C) (``Folds``)."""
    if x.ndim != 3 or x.shape[0] != 1:
        raise ValueError(f"fold_with_overlap expects (1, total, C), got {x.shape}")
    folds = Folds(x.shape[1], target, overlap)
    return folds.take(x, 0, folds.count)


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
