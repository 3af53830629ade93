"""RTVC's speaker encoder constants (encoder/params_data.py, params_model.py)."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.dsp import SAMPLE_RATE


@dataclass(frozen=True)
class EncoderConfig:
    sample_rate: int = SAMPLE_RATE  # Hz
    mel_window_ms: int = 25  # -> n_fft 400 samples
    mel_step_ms: int = 10  # -> hop 160 samples
    n_mels: int = 40
    partial_frames: int = 160  # mel frames per partial utterance (1.6 s)
    partial_overlap: float = 0.5
    min_pad_coverage: float = 0.75
    vad_window_ms: int = 30  # -> 480 samples
    vad_moving_average_width: int = 8  # windows
    vad_max_silence_length: int = 6  # windows
    vad_mode: int = 3  # webrtcvad aggressiveness
    target_dbfs: float = -30.0
    hidden_size: int = 256
    embedding_size: int = 256
    num_layers: int = 3
    short_speech_seconds: float = 1.0  # below this (after trimming) the embedding matches poorly

    @property
    def n_fft(self) -> int:
        return self.sample_rate * self.mel_window_ms // 1000

    @property
    def hop_length(self) -> int:
        return self.sample_rate * self.mel_step_ms // 1000

    @property
    def vad_window_samples(self) -> int:
        return self.vad_window_ms * self.sample_rate // 1000
