"""Training data as RTVC lays it out and batches it.

- `MetadataRow`: one line of RTVC's ``train.txt``
  (``audio-<name>.npy|mel-<name>.npy|embed-<name>.npy|<samples>|<frames>|<text>``).
- `SynthesizerDataset` + `collate_synthesizer`: RTVC's synthesizer items and padding
  (ids padded with 0, mels with -4 to max(T) + 1 rounded up to r, stop targets).
- `VocoderDataset` + `collate_vocoder`: RTVC's vocoder items (mu-law labels of the
  pre-emphasised audio) and random 1000-sample crops.

Shapes: B batch, N text length, M mel bins (80), T frames. Mels are time-major (T, 80) on
disk and mel-major (80, T) in memory, as in RTVC.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.dsp import pre_emphasis
from ..core.errors import InputError
from ..synthesizer.text import text_to_sequence
from ..vocoder.postprocess import encode_mu_law, float_2_label
from .config import VocoderTrainConfig
from .files import write_text



# ------------------------------------------------------------------------------ train.txt
@dataclass(frozen=True)
class MetadataRow:
    """One utterance of ``train.txt``: file names (in audio/, mels/, embeds/), sizes, text."""

    audio_file: str
    mel_file: str
    embed_file: str
    n_samples: int  # trimmed, rescaled 16 kHz samples
    n_frames: int  # mel frames (1 + n_samples // hop)
    text: str

    @classmethod
    def for_name(cls, name: str, n_samples: int, n_frames: int, text: str) -> "MetadataRow":
        """RTVC's file names for utterance ``name``."""
        return cls(f"audio-{name}.npy", f"mel-{name}.npy", f"embed-{name}.npy",
                   int(n_samples), int(n_frames), text)

    @property
    def name(self) -> str:
        """The utterance name (the audio file's stem)."""
        return self.audio_file[len("audio-"):-len(".npy")]

    def line(self) -> str:
        """The ``train.txt`` line, without the newline."""
        return "|".join([self.audio_file, self.mel_file, self.embed_file, str(self.n_samples),
                         str(self.n_frames), self.text])

    @classmethod
    def parse(cls, line: str) -> "MetadataRow":
        """A ``train.txt`` line -> row (the text is everything after the fifth ``|``)."""
        parts = line.rstrip("\n").split("|", 5)
        if len(parts) != 6:
            raise InputError(f"train.txt: malformed line {line[:80]!r} (expected 6 fields)")
        return cls(parts[0], parts[1], parts[2], int(parts[3]), int(parts[4]), parts[5])


def read_metadata(path: str | os.PathLike) -> list[MetadataRow]:
    """Every row of a ``train.txt`` (UTF-8), in file order."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        return [MetadataRow.parse(line) for line in f if line.strip()]


def write_metadata(path: str | os.PathLike, rows: Iterable[MetadataRow]) -> Path:
    """Write rows as ``train.txt`` (UTF-8, one line each), atomically."""
    return write_text(path, "".join(row.line() + "\n" for row in rows))


# -------------------------------------------------------------------------------- shuffling
def epoch_order(n_items: int, generator: torch.Generator) -> list[int]:
    """The item order of one epoch of RTVC's ``DataLoader(shuffle=True)``: creating the epoch's
    iterator draws one int64 from ``generator`` (the workers' base seed), the sampler one more
    to seed its own generator, which gives ``randperm(n_items)``. With torch's global
    generator this replays RTVC's loader."""
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    seed = int(torch.empty((), dtype=torch.int64).random_(generator=generator).item())
    return torch.randperm(n_items, generator=torch.Generator().manual_seed(seed)).tolist()


def epoch_batches(n_items: int, batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """One epoch's batches of dataset indices (`epoch_order` cut into ``batch_size`` chunks;
    the last may be smaller, RTVC's drop_last=False)."""
    order = epoch_order(n_items, generator)
    return [order[i:i + batch_size] for i in range(0, n_items, batch_size)]


# ----------------------------------------------------------------------------- synthesizer
@dataclass(frozen=True)
class SynthesizerItem:
    """RTVC's dataset item: ids (N,) int32 ending with EOS, mel (80, T) float32,
    embedding (256,) float32, dataset index."""

    ids: np.ndarray
    mel: np.ndarray
    embed: np.ndarray
    index: int


class SynthesizerDataset(torch.utils.data.Dataset):
    """RTVC's SynthesizerDataset over a preprocessed folder (train.txt, mels/, embeds/).

    Rows with 0 mel frames are skipped, as RTVC does. Item i reads its mel and embedding
    from disk each time (nothing is cached in memory).
    """

    def __init__(self, metadata: str | os.PathLike | Sequence[MetadataRow],
                 mel_dir: str | os.PathLike, embed_dir: str | os.PathLike):
        rows = read_metadata(metadata) if isinstance(metadata, (str, os.PathLike)) else list(metadata)
        self.rows = [row for row in rows if row.n_frames != 0]
        self.mel_dir, self.embed_dir = Path(mel_dir), Path(embed_dir)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> "SynthesizerDataset":
        """The dataset of a `preprocess_dataset` output folder (RTVC's SV2TTS/synthesizer)."""
        folder = Path(folder)
        return cls(folder / "train.txt", folder / "mels", folder / "embeds")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> SynthesizerItem:
        row = self.rows[index]
        ids = np.asarray(text_to_sequence(row.text.strip()), dtype=np.int32)
        mel = np.load(self.mel_dir / row.mel_file).T.astype(np.float32)
        embed = np.load(self.embed_dir / row.embed_file).astype(np.float32)
        return SynthesizerItem(ids, mel, embed, index)


@dataclass
class SynthesizerBatch:
    """A padded synthesizer batch (torch tensors on one device).

    chars (B, N) int64, mels (B, 80, T_pad) float32, embeds (B, 256) float32,
    stop (B, T_pad) float32 targets, mel_lengths (B,) int64 frames, indices (B,) int64.
    """

    chars: torch.Tensor
    mels: torch.Tensor
    embeds: torch.Tensor
    stop: torch.Tensor
    mel_lengths: torch.Tensor
    indices: torch.Tensor

    def to(self, device: torch.device | str) -> "SynthesizerBatch":
        """The same batch on ``device``."""
        return SynthesizerBatch(*(t.to(device) for t in (self.chars, self.mels, self.embeds, self.stop,
                                                          self.mel_lengths, self.indices)))


def padded_frames(max_frames: int, r: int) -> int:
    """RTVC's padded mel length: max(T) + 1, rounded up to a multiple of r."""
    n = max_frames + 1
    return n + (r - n % r) % r


def stop_targets(mel_lengths: Sequence[int], total: int) -> np.ndarray:
    """RTVC's stop targets (B, total) float32: 0 before each item's last real frame, 1 from it on."""
    stop = np.ones((len(mel_lengths), total), dtype=np.float32)
    for j, n in enumerate(mel_lengths):
        stop[j, :int(n) - 1] = 0.0
    return stop


def collate_synthesizer(items: Sequence[SynthesizerItem], r: int,
                        mel_pad_value: float = -4.0) -> SynthesizerBatch:
    """RTVC's collate_synthesizer (+ the stop targets train.py builds): ids right-padded with
    0, mels with ``mel_pad_value`` to `padded_frames(max T, r)`."""
    if not items:
        raise InputError("collate_synthesizer: empty batch")
    n_max = max(len(it.ids) for it in items)
    chars = np.stack([np.pad(it.ids, (0, n_max - len(it.ids))) for it in items]).astype(np.int64)
    lengths = [it.mel.shape[1] for it in items]
    total = padded_frames(max(lengths), r)
    mels = np.stack([np.pad(it.mel, ((0, 0), (0, total - it.mel.shape[1])), constant_values=mel_pad_value)
                     for it in items]).astype(np.float32)
    embeds = np.stack([it.embed for it in items]).astype(np.float32)
    return SynthesizerBatch(torch.from_numpy(chars), torch.from_numpy(mels), torch.from_numpy(embeds),
                            torch.from_numpy(stop_targets(lengths, total)),
                            torch.tensor(lengths, dtype=torch.int64),
                            torch.tensor([it.index for it in items], dtype=torch.int64))


# --------------------------------------------------------------------------------- vocoder
@dataclass(frozen=True)
class VocoderItem:
    """RTVC's vocoder item: mel (80, T) float32 / 4 in [-1, 1], labels (T * hop,) int64."""

    mel: np.ndarray
    labels: np.ndarray
    index: int


def vocoder_labels(wav: np.ndarray, n_frames: int, cfg: VocoderTrainConfig = VocoderTrainConfig()) -> np.ndarray:
    """RTVC's vocoder targets of a trimmed 16 kHz wav: pre-emphasis, clip to [-1, 1], zero-pad
    to a whole number of hops past the end, cut to ``n_frames * hop``, mu-law (or linear)
    labels -> (n_frames * hop,) int64 in 0 .. 2**bits - 1."""
    hop = cfg.hop_length
    x = pre_emphasis(wav, cfg.preemphasis) if cfg.apply_preemphasis else np.asarray(wav)
    x = np.clip(x, -1, 1)
    x = np.pad(x, (0, (len(x) // hop + 1) * hop - len(x)))
    if len(x) < n_frames * hop:
        raise InputError(f"vocoder item: {len(x)} samples cannot cover {n_frames} mel frames")
    x = x[:n_frames * hop]
    labels = encode_mu_law(x, 2 ** cfg.bits) if cfg.mu_law else float_2_label(x, cfg.bits)
    return labels.astype(np.int64)


class VocoderDataset(torch.utils.data.Dataset):
    """RTVC's VocoderDataset: mels from ``mel_dir`` (ground truth, or GTA mels from the
    synthesizer), audio from ``audio_dir`` (the preprocessed wavs)."""

    def __init__(self, metadata: str | os.PathLike | Sequence[MetadataRow], mel_dir: str | os.PathLike,
                 audio_dir: str | os.PathLike, cfg: VocoderTrainConfig = VocoderTrainConfig()):
        rows = read_metadata(metadata) if isinstance(metadata, (str, os.PathLike)) else list(metadata)
        self.rows = [row for row in rows if row.n_frames != 0]
        self.mel_dir, self.audio_dir, self.cfg = Path(mel_dir), Path(audio_dir), cfg

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> VocoderItem:
        row = self.rows[index]
        mel = np.load(self.mel_dir / row.mel_file).T.astype(np.float32) / self.cfg.mel_max_abs_value
        wav = np.load(self.audio_dir / row.audio_file)
        return VocoderItem(mel, vocoder_labels(wav, mel.shape[1], self.cfg), index)


@dataclass
class VocoderBatch:
    """x (B, seq_len) float32 input samples in [-1, 1], y (B, seq_len) int64 target labels,
    mels (B, 80, mel_win) float32; mel_offsets (B,) the crops' first frames."""

    x: torch.Tensor
    y: torch.Tensor
    mels: torch.Tensor
    mel_offsets: np.ndarray

    def to(self, device: torch.device | str) -> "VocoderBatch":
        """The same batch on ``device``."""
        return VocoderBatch(self.x.to(device), self.y.to(device), self.mels.to(device), self.mel_offsets)


def collate_vocoder(items: Sequence[VocoderItem], rng: np.random.RandomState,
                    cfg: VocoderTrainConfig = VocoderTrainConfig()) -> VocoderBatch:
    """RTVC's collate_vocoder: one random crop per item, in batch order.

    ``rng.randint(0, T - 2 - (mel_win + 2 pad))`` per item, i.e. T - 15 (RTVC counts the pads
    twice; numpy's global generator there: pass ``np.random.RandomState(seed)`` to replay
    ``np.random.seed(seed)``); the crop's samples belong to frames off + pad ... off + pad +
    seq_len / hop - 1 (the pads are context).
    """
    win, hop, pad, seq = cfg.mel_win, cfg.hop_length, cfg.pad, cfg.seq_len
    limits = [it.mel.shape[-1] - 2 - (win + 2 * pad) for it in items]
    if min(limits, default=0) < 1:
        raise InputError(f"collate_vocoder: an item has fewer than {win + 2 * pad + 3} mel frames")
    offsets = np.array([rng.randint(0, n) for n in limits], dtype=np.int64)
    mels = np.stack([it.mel[:, o:o + win] for it, o in zip(items, offsets)]).astype(np.float32)
    labels = np.stack([it.labels[(o + pad) * hop:(o + pad) * hop + seq + 1]
                       for it, o in zip(items, offsets)]).astype(np.int64)
    labels_t = torch.from_numpy(labels)
    bits = cfg.bits
    x = 2 * labels_t[:, :seq].float() / (2 ** bits - 1.0) - 1.0
    return VocoderBatch(x, labels_t[:, 1:], torch.from_numpy(mels), offsets)
