"""Griffin-Lim as a vocoder: no checkpoint, RTVC's settings (core.spectrogram.griffin_lim)."""
from __future__ import annotations

import numpy as np

from ..core.spectrogram import griffin_lim, validate_mel


class GriffinLim:
    """Mel (80, T) -> waveform ((T - 1) * 200,) float32 at 16 kHz by Griffin-Lim (60 iterations).

    Same interface as the WaveRNN :class:`~sv2tts.vocoder.Vocoder`; fast and robotic-sounding,
    useful without a vocoder checkpoint. Stateless and thread-safe.
    """

    name = "griffinlim"

    def vocode(self, mel: np.ndarray, *, seed: int | None = None, **_options) -> np.ndarray:
        """``seed`` fixes the random initial phases; WaveRNN-only options are ignored."""
        return griffin_lim(validate_mel(mel), seed=seed)

    def vocode_many(self, mels, *, seeds=None, **_options) -> list[np.ndarray]:
        """``vocode`` for each mel (Griffin-Lim has nothing to share between items)."""
        seeds = [None] * len(mels) if seeds is None else seeds
        return [self.vocode(m, seed=s) for m, s in zip(mels, seeds, strict=True)]

    def __repr__(self) -> str:
        return "GriffinLim()"
