"""The speaker encoder's audio front end, exactly as RTVC computes it (pure numpy).

wav (16 kHz float32) -> volume normalisation -> webrtcvad long-silence trimming (core.dsp) -> 40-band
power mel frames (T, 40) -> partial-utterance slices of 160 frames.
"""
from __future__ import annotations

import math

import numpy as np

from ..core import dsp
from ..core.spectrogram import mel_filters, stft
from .config import EncoderConfig

DEFAULT = EncoderConfig()


def trim_long_silences(wav: np.ndarray, config: EncoderConfig = DEFAULT) -> np.ndarray:
    """RTVC's webrtcvad trimming with the encoder's settings (core.dsp.trim_long_silences)."""
    return dsp.trim_long_silences(wav, sample_rate=config.sample_rate, window_ms=config.vad_window_ms,
                                  moving_average_width=config.vad_moving_average_width,
                                  max_silence_windows=config.vad_max_silence_length, mode=config.vad_mode)


def mel_frames(wav: np.ndarray, config: EncoderConfig = DEFAULT) -> np.ndarray:
    """40-band power mel spectrogram, time-major: (1 + n // 160, 40) float32.

    librosa's melspectrogram with n_fft 400, hop 160, Hann, center=True with zero padding,
    power 2, Slaney mel scale and norm; no log.
    """
    return _mel(np.asarray(wav, dtype=np.float32), config, center=True)


def _mel(wav: np.ndarray, config: EncoderConfig, center: bool) -> np.ndarray:
    """(frames, n_mels) float32 power mel of float32 ``wav`` (see mel_frames)."""
    power = np.abs(stft(wav, config.n_fft, config.hop_length, center=center)) ** 2  # (bins, frames) float32
    return (mel_filters(config.sample_rate, config.n_fft, config.n_mels) @ power).T


def partial_slices(
    n_samples: int,
    partial_frames: int = DEFAULT.partial_frames,
    min_pad_coverage: float = DEFAULT.min_pad_coverage,
    overlap: float = DEFAULT.partial_overlap,
    hop_length: int = DEFAULT.hop_length,
) -> tuple[list[slice], list[slice]]:
    """RTVC's compute_partial_slices: (wav slices in samples, mel slices in frames), >= 1 each."""
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if not 0 < min_pad_coverage <= 1:
        raise ValueError(f"min_pad_coverage must be in (0, 1], got {min_pad_coverage}")
    n_frames = int(math.ceil((n_samples + 1) / hop_length))
    frame_step = max(int(round(partial_frames * (1 - overlap))), 1)
    wav_slices, mel_slices = [], []
    steps = max(1, n_frames - partial_frames + frame_step + 1)
    for i in range(0, steps, frame_step):
        mel_slices.append(slice(i, i + partial_frames))
        wav_slices.append(slice(i * hop_length, (i + partial_frames) * hop_length))
    last = wav_slices[-1]
    coverage = (n_samples - last.start) / (last.stop - last.start)
    if coverage < min_pad_coverage and len(mel_slices) > 1:
        mel_slices, wav_slices = mel_slices[:-1], wav_slices[:-1]
    return wav_slices, mel_slices


def mel_frames_range(wav: np.ndarray, start: int, stop: int,
                     config: EncoderConfig = DEFAULT) -> np.ndarray:
    """Frames [start, stop) of ``mel_frames(wav)`` computed from that stretch of audio only.

    Frames past the end of the wav see zeros, as the zero-padded partials of RTVC do.
    Returns (stop - start, 40) float32, equal to mel_frames(zero-padded wav)[start:stop].
    """
    hop, half = config.hop_length, config.n_fft // 2
    lo, hi = start * hop - half, (stop - 1) * hop + half  # samples seen by these frames
    segment = np.zeros(hi - lo, dtype=np.float32)
    a, b = max(lo, 0), min(hi, len(wav))
    if b > a:
        segment[a - lo:b - lo] = wav[a:b]
    return _mel(segment, config, center=False)
