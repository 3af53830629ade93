"""RTVC's training defaults as frozen dataclasses (synthesizer/hparams.py, vocoder/hparams.py,
encoder/params_*.py at RTVC 865eba8). One class per job; `replace()` gives a variant.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..core.dsp import SAMPLE_RATE

Stage = tuple[int, float, int, int]  # (r, learning rate, max step, batch size)

# RTVC's tts_schedule: every stage r = 2 and batch 12; the lr falls until step 640k.
RTVC_TTS_SCHEDULE: tuple[Stage, ...] = (
    (2, 1e-3, 20_000, 12),
    (2, 5e-4, 40_000, 12),
    (2, 2e-4, 80_000, 12),
    (2, 1e-4, 160_000, 12),
    (2, 3e-5, 320_000, 12),
    (2, 1e-5, 640_000, 12),
)


@dataclass(frozen=True)
class PreprocessConfig:
    """`synthesizer_preprocess_audio.py --no_alignments` settings (RTVC's hparams)."""

    sample_rate: int = SAMPLE_RATE  # Hz the audio is loaded at (kaiser_best resampling)
    rescale: bool = True  # peak-normalise every file to `rescaling_max`
    rescaling_max: float = 0.9
    trim_silence: bool = True  # webrtcvad long-silence trim (the encoder's), no volume change
    utterance_min_duration: float = 1.6  # seconds after the trim; shorter ones are dropped
    max_mel_frames: int = 900  # longer mels are dropped (RTVC's clip_mels_length)
    clip_mels_length: bool = True
    hop_size: int = 200  # samples per mel frame

    def with_(self, **changes) -> "PreprocessConfig":
        """A copy with some fields changed."""
        return replace(self, **changes)


@dataclass(frozen=True)
class SynthesizerTrainConfig:
    """`synthesizer/train.py` settings: schedule, Adam, clipping, padding, checkpoint cadence."""

    schedule: tuple[Stage, ...] = RTVC_TTS_SCHEDULE
    clip_grad_norm: float = 1.0  # tts_clip_grad_norm (total L2 norm, None: no clipping)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    mel_pad_value: float = -4.0  # -max_abs_value (symmetric mels)
    save_every: int = 1000  # steps
    backup_every: int = 25_000  # steps
    eval_interval: int = 500  # tts_eval_interval (steps)
    num_workers: int = 2  # DataLoader workers
    gta_batch_size: int = 16  # synthesis_batch_size, for ground-truth-aligned mels

    def with_(self, **changes) -> "SynthesizerTrainConfig":
        """A copy with some fields changed."""
        return replace(self, **changes)


@dataclass(frozen=True)
class VocoderTrainConfig:
    """`vocoder/train.py` settings (RAW mode, 9-bit mu-law): crops, Adam, cadence."""

    batch_size: int = 100  # voc_batch_size
    lr: float = 1e-4  # voc_lr
    seq_len: int = 1000  # voc_seq_len: samples per training crop (5 mel frames)
    pad: int = 2  # voc_pad: mel frames of context on each side
    hop_length: int = 200
    bits: int = 9
    mu_law: bool = True
    mel_max_abs_value: float = 4.0  # mels are divided by this (-> [-1, 1])
    apply_preemphasis: bool = True
    preemphasis: float = 0.97
    epochs: int = 349
    save_every: int = 1000
    backup_every: int = 25_000
    num_workers: int = 2

    @property
    def mel_win(self) -> int:
        """Mel frames per crop: seq_len / hop + 2 pad (9)."""
        return self.seq_len // self.hop_length + 2 * self.pad

    def with_(self, **changes) -> "VocoderTrainConfig":
        """A copy with some fields changed."""
        return replace(self, **changes)


@dataclass(frozen=True)
class EncoderTrainConfig:
    """`encoder/train.py` GE2E settings."""

    speakers_per_batch: int = 64
    utterances_per_speaker: int = 10
    partial_frames: int = 160  # mel frames per training partial (1.6 s)
    lr: float = 1e-4  # learning_rate_init
    similarity_grad_scale: float = 0.01  # w and b gradients are multiplied by this
    clip_grad_norm: float = 3.0
    save_every: int = 500
    backup_every: int = 7500

    def with_(self, **changes) -> "EncoderTrainConfig":
        """A copy with some fields changed."""
        return replace(self, **changes)


SAMPLE_TEXT = "This is my voice, learned from a few minutes of speech."  # the samples' fixed sentence


@dataclass(frozen=True)
class FinetuneConfig:
    """A fine-tuning run (`sv2tts finetune`). None means: the value recorded by the run being
    resumed, else the model's default (synthesizer: 2000 steps, the batch size and lr of the
    RTVC schedule stage the start checkpoint is in; vocoder: 5000 steps, RTVC's batch 100 and
    lr 1e-4 unless the checkpoint stores one). Steps count from the start checkpoint's step."""

    steps: int | None = None  # steps of this run, from the start checkpoint
    batch_size: int | None = None
    lr: float | None = None
    save_every: int = 100  # steps between checkpoints (RTVC #832: 100 when fine-tuning)
    sample_every: int = 500  # steps between validation, alignment plot and sample wav
    val_fraction: float = 0.05  # share of the utterances held out for the validation loss
    seed: int | None = None  # data order, dropout masks, crops (None: recorded, else 0)
    sample_text: str = SAMPLE_TEXT

    def __post_init__(self) -> None:
        from ..core.errors import InputError

        for name in ("steps", "batch_size", "save_every", "sample_every"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InputError(f"{name}: expected an int >= 1, got {value!r}")
        if self.lr is not None and not 0 < self.lr < 1:
            raise InputError(f"lr: expected a value in (0, 1), got {self.lr!r}")
        if not 0 <= self.val_fraction < 1:
            raise InputError(f"val_fraction: expected a value in [0, 1), got {self.val_fraction!r}")

    def with_(self, **changes) -> "FinetuneConfig":
        """A copy with some fields changed."""
        return replace(self, **changes)
