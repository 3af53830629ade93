"""Synthesizer training data, as RTVC's ``synthesizer_preprocess_audio.py --no_alignments``
and ``synthesizer_preprocess_embeds.py`` make it.

Per utterance (`preprocess_utterance`): load at 16 kHz (kaiser_best), peak-rescale to 0.9,
webrtcvad long-silence trim (no volume change), drop when shorter than 1.6 s, 80-band mel
(80, 1 + n // 200), drop when over 900 frames. A dataset (`preprocess_dataset`) writes RTVC's
folder: ``audio/audio-<name>.npy`` (trimmed float32 wav), ``mels/mel-<name>.npy`` (mel.T,
time-major), ``embeds/embed-<name>.npy`` (the speaker encoder's utterance embedding of the
saved audio, after the encoder's own preprocessing) and ``train.txt``; dropped utterances
leave no file and are reported with their reason.
"""
from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..core.audio import load_audio
from ..core.errors import AudioError, InputError
from ..core.spectrogram import melspectrogram
from ..encoder import preprocess as encoder_preprocess
from .config import PreprocessConfig
from .data import MetadataRow, read_metadata, write_metadata
from .files import save_npy, write_text

log = logging.getLogger(__name__)

# Drop reasons (RTVC drops the first two; the others are files RTVC would crash on or keep
# as garbage).
TOO_SHORT = "too_short"  # under utterance_min_duration after the silence trim
TOO_LONG = "too_long"  # over max_mel_frames
UNREADABLE = "unreadable"  # not audio, truncated, missing
SILENT = "silent"  # all samples zero (RTVC's rescale divides by 0)
EMPTY_TEXT = "empty_text"  # nothing left of the transcript after removing quotes and blanks
BAD_TEXT = "bad_text"  # transcript missing or not UTF-8

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3")  # RTVC's --no_alignments search, in this order


@dataclass(frozen=True)
class UtteranceSource:
    """One input utterance: audio file, transcript, output name (the audio file's stem)."""

    audio: Path
    text: str
    name: str


@dataclass(frozen=True)
class ProcessedUtterance:
    """A kept utterance: wav (n,) float32 (trimmed, rescaled, 16 kHz), mel (80, T) float32."""

    name: str
    text: str
    wav: np.ndarray
    mel: np.ndarray
    raw_samples: int  # before the trim

    @property
    def row(self) -> MetadataRow:
        """Its ``train.txt`` row."""
        return MetadataRow.for_name(self.name, len(self.wav), self.mel.shape[1], self.text)


@dataclass(frozen=True)
class DroppedUtterance:
    """An utterance left out of training, with the reason (one of the constants above)."""

    name: str
    audio: str
    reason: str
    detail: str = ""
    raw_samples: int | None = None
    trimmed_samples: int | None = None
    mel_frames: int | None = None


@dataclass
class PreprocessReport:
    """What `preprocess_dataset` did: kept rows (train.txt order), dropped utterances."""

    kept: list[MetadataRow] = field(default_factory=list)
    dropped: list[DroppedUtterance] = field(default_factory=list)
    reused: int = 0  # kept utterances whose files came from an earlier run (skip_existing)

    def summary(self) -> str:
        """One line: kept count and minutes, dropped counts by reason."""
        minutes = sum(r.n_samples for r in self.kept) / 16000 / 60
        reasons: dict[str, int] = {}
        for d in self.dropped:
            reasons[d.reason] = reasons.get(d.reason, 0) + 1
        dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())) or "none"
        return f"{len(self.kept)} utterances kept ({minutes:.1f} min of speech); dropped: {dropped}"

    def to_json(self) -> str:
        """The report as JSON: kept rows and dropped utterances with their reasons."""
        return json.dumps({"kept": [asdict(r) for r in self.kept],
                           "dropped": [asdict(d) for d in self.dropped]}, indent=1, ensure_ascii=False)


# --------------------------------------------------------------------------- transcripts
def clean_transcript(raw: str) -> str:
    """RTVC's transcript reading: every double quote removed, then surrounding blanks."""
    return raw.replace('"', "").strip()


def read_transcript(path: str | os.PathLike) -> str:
    """A transcript file (UTF-8) as RTVC reads it; InputError naming the file when it cannot be
    read or is not UTF-8."""
    path = Path(path)
    try:
        return clean_transcript(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: transcript is not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the transcript ({e.strerror or e})") from None


def transcript_path(audio: Path) -> Path | None:
    """RTVC's transcript of an audio file: same stem ``.txt``, else ``.normalized.txt``."""
    for suffix in (".txt", ".normalized.txt"):
        candidate = audio.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def rtvc_dataset_sources(datasets_root: str | os.PathLike, datasets_name: str = "LibriSpeech",
                         subfolders: Sequence[str] = ("train-clean-100", "train-clean-360")
                         ) -> list[UtteranceSource]:
    """RTVC's --no_alignments traversal: ``<root>/<name>/<subfolder>/<speaker>/<book>/`` audio
    files (.wav, then .flac, then .mp3) with their transcripts. Speaker and book folders are
    visited in sorted order (RTVC: file-system order). InputError for a missing folder or an
    audio file without transcript (RTVC: an assertion)."""
    sources = []
    for sub in subfolders:
        folder = Path(datasets_root, datasets_name, sub)
        if not folder.is_dir():
            raise InputError(f"{folder}: dataset folder not found")
        for speaker in sorted(p for p in folder.iterdir() if p.is_dir()):
            for book in sorted(p for p in speaker.iterdir() if p.is_dir()):
                for suffix in AUDIO_SUFFIXES:
                    for audio in sorted(book.glob(f"*{glob.escape(suffix)}")):
                        text = transcript_path(audio)
                        if text is None:
                            raise InputError(f"{audio}: no transcript ({audio.stem}.txt or "
                                             f"{audio.stem}.normalized.txt)")
                        sources.append(UtteranceSource(audio, read_transcript(text), audio.stem))
    return sources


# ---------------------------------------------------------------------------- utterances
def rescale(wav: np.ndarray, cfg: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """RTVC's rescale: ``wav / max|wav| * rescaling_max`` (float32 stays float32); the wav as
    is when ``cfg.rescale`` is off. wav must not be all zeros."""
    if not cfg.rescale:
        return wav
    return wav / np.abs(wav).max() * cfg.rescaling_max


def process_wav(wav: np.ndarray, text: str, name: str, cfg: PreprocessConfig = PreprocessConfig(),
                audio: str = "", raw_samples: int | None = None
                ) -> ProcessedUtterance | DroppedUtterance:
    """RTVC's process_utterance on a loaded, rescaled wav (n,) float32: trim, min duration, mel,
    max frames. Returns the kept utterance or why it is dropped."""
    raw = len(wav) if raw_samples is None else raw_samples
    if cfg.trim_silence:
        wav = encoder_preprocess.trim_long_silences(wav)
    if len(wav) < cfg.utterance_min_duration * cfg.sample_rate:
        return DroppedUtterance(name, audio, TOO_SHORT,
                                f"{len(wav) / cfg.sample_rate:.2f} s of speech after trimming silences, "
                                f"under {cfg.utterance_min_duration:g} s", raw, len(wav))
    mel = melspectrogram(wav)
    if cfg.clip_mels_length and mel.shape[1] > cfg.max_mel_frames:
        return DroppedUtterance(name, audio, TOO_LONG,
                                f"{mel.shape[1]} mel frames ({len(wav) / cfg.sample_rate:.2f} s), over "
                                f"{cfg.max_mel_frames}", raw, len(wav), mel.shape[1])
    return ProcessedUtterance(name, text, wav, mel, raw)


def preprocess_utterance(source: UtteranceSource, cfg: PreprocessConfig = PreprocessConfig()
                         ) -> ProcessedUtterance | DroppedUtterance:
    """Load, rescale and process one utterance (RTVC's preprocess_speaker + process_utterance)."""
    audio = str(source.audio)
    if not source.text:
        return DroppedUtterance(source.name, audio, EMPTY_TEXT, "the transcript is empty")
    try:  # librosa.load(path, sr=16000): mono float32, kaiser_best resampling
        wav, _ = load_audio(source.audio, sample_rate=cfg.sample_rate, max_seconds=None)
    except AudioError as e:
        return DroppedUtterance(source.name, audio, UNREADABLE, str(e))
    if not np.any(wav):
        return DroppedUtterance(source.name, audio, SILENT, f"{audio}: every sample is zero", len(wav))
    return process_wav(rescale(wav, cfg), source.text, source.name, cfg, audio, len(wav))


# ------------------------------------------------------------------------------ datasets
def preprocess_dataset(sources: Iterable[UtteranceSource], out_dir: str | os.PathLike, *,
                       encoder=None, cfg: PreprocessConfig = PreprocessConfig(),
                       skip_existing: bool = False,
                       on_item: Callable[[UtteranceSource, MetadataRow | DroppedUtterance], None] | None = None
                       ) -> PreprocessReport:
    """Preprocess utterances into RTVC's synthesizer folder ``out_dir`` and write train.txt.

    encoder: an `sv2tts.Encoder` (or None: the built-in one) for the embeddings
        (`embed_dataset`); False skips them (RTVC's separate embeds step).
    skip_existing: reuse an utterance's audio/mel files from an earlier run (RTVC's -s); its
        row is rebuilt from them, so train.txt always lists every kept utterance.
    on_item: called after each utterance with its row or its drop (progress reporting).
    Returns the report (kept rows in input order, dropped utterances with reasons).
    """
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "mels").mkdir(parents=True, exist_ok=True)
    report = PreprocessReport()
    for source in sources:
        row = _existing_row(out, source) if skip_existing else None
        if row is not None:
            report.reused += 1
            result: MetadataRow | DroppedUtterance = row
        else:
            processed = preprocess_utterance(source, cfg)
            if isinstance(processed, DroppedUtterance):
                log.info("dropped %s (%s): %s", processed.audio, processed.reason, processed.detail)
                result = processed
            else:
                result = processed.row
                save_npy(out / "audio" / result.audio_file, processed.wav)
                save_npy(out / "mels" / result.mel_file, processed.mel.T)
        if isinstance(result, DroppedUtterance):
            report.dropped.append(result)
        else:
            report.kept.append(result)
        if on_item is not None:
            on_item(source, result)
    write_metadata(out / "train.txt", report.kept)
    if encoder is not False:
        embed_dataset(out, encoder, skip_existing=skip_existing)
    log.info("%s: %s", out, report.summary())
    return report


def _existing_row(out: Path, source: UtteranceSource) -> MetadataRow | None:
    """The row of an utterance whose audio and mel files an earlier run saved, else None."""
    probe = MetadataRow.for_name(source.name, 0, 0, source.text)
    audio, mel = out / "audio" / probe.audio_file, out / "mels" / probe.mel_file
    if not (audio.is_file() and mel.is_file()):
        return None
    try:
        n_samples = len(np.load(audio, mmap_mode="r"))
        n_frames = np.load(mel, mmap_mode="r").shape[0]
    except (OSError, ValueError):
        return None
    return MetadataRow.for_name(source.name, n_samples, n_frames, source.text)


def embed_wav(wav: np.ndarray, encoder, name: str = "audio") -> np.ndarray:
    """RTVC's create_embeddings for one saved wav: the encoder's preprocess_wav (-30 dBFS,
    increase only; a second VAD trim) then embed_utterance -> (256,) float32."""
    wav = encoder.preprocess(wav, encoder.config.sample_rate, name)
    return encoder.embed_utterance(wav).astype(np.float32)


def embed_dataset(folder: str | os.PathLike, encoder=None, *, skip_existing: bool = False) -> int:
    """Write ``embeds/embed-<name>.npy`` for every row of ``folder/train.txt`` (RTVC's
    synthesizer_preprocess_embeds.py). encoder: an `sv2tts.Encoder`, None = built-in.
    Returns the number of embeddings computed."""
    from ..encoder import Encoder

    folder = Path(folder)
    encoder = encoder or Encoder.load()
    (folder / "embeds").mkdir(parents=True, exist_ok=True)
    done = 0
    for row in read_metadata(folder / "train.txt"):
        target = folder / "embeds" / row.embed_file
        if skip_existing and target.is_file():
            continue
        audio = folder / "audio" / row.audio_file
        save_npy(target, embed_wav(np.load(audio), encoder, str(audio)))
        done += 1
    return done


def write_report(path: str | os.PathLike, report: PreprocessReport) -> Path:
    """Write the report as JSON (atomically)."""
    return write_text(path, report.to_json())
