"""Speaker encoder stage: reference audio -> 256-d unit-norm voice embedding (GE2E, RTVC numbers).

    enc = Encoder.load()              # built-in weights (resemblyzer's pretrained GE2E)
    e = enc.embed("ref.wav")          # (256,) float32, L2 norm 1
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import nullcontext
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..core import dsp
from ..core.audio import MAX_SECONDS, as_mono_float32, check_sample_rate, load_audio, resample
from ..core.checkpoint import check_finite, check_keys, check_shapes, load_state_dict
from ..core.errors import AudioError, InputError
from ..core.runtime import resolve_device, torch_threads
from . import preprocess
from .config import EncoderConfig
from .model import SpeakerEncoderNet

__all__ = ["Encoder", "EncoderConfig"]

log = logging.getLogger(__name__)


_PARTIALS_PER_BATCH = 64  # partial utterances per forward pass (bounds memory on long audio)


def builtin_weights() -> Path:
    """Path of the packaged encoder.pt (resemblyzer's pretrained GE2E weights, Apache-2.0)."""
    return Path(str(resources.files(__package__) / "weights" / "encoder.pt"))


class Encoder:
    """A loaded speaker encoder. Safe to share between threads (inference only, no state)."""

    def __init__(self, net: SpeakerEncoderNet, config: EncoderConfig = EncoderConfig(),
                 device: str | torch.device = "cpu", source: str = ""):
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.config = config
        self.source = source

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> "Encoder":
        """Load an RTVC ``encoder.pt`` (weights_only); with no path, the built-in weights."""
        path = Path(path) if path is not None else builtin_weights()
        config = EncoderConfig()
        state = load_state_dict(path, "speaker encoder")
        net = SpeakerEncoderNet(config)
        expected = net.state_dict()
        check_keys(state, expected.keys(), path, "speaker encoder")
        check_shapes(state, {k: tuple(v.shape) for k, v in expected.items()}, path, "speaker encoder")
        check_finite(state, path, "speaker encoder")
        net.load_state_dict(state, strict=True)
        encoder = cls(net, config, device, source=str(path))
        log.info("loaded speaker encoder from %s on %s", path, encoder.device)
        return encoder

    # -- audio -> preprocessed wav ------------------------------------------------------------

    def preprocess(self, wav: np.ndarray, sample_rate: int, name: str = "audio") -> np.ndarray:
        """RTVC's preprocess_wav on an array: resample to 16 kHz (kaiser_best), normalise the
        volume to -30 dBFS (increase only), trim long silences (webrtcvad). -> (n,) float32.

        Raises AudioError when nothing is left (silence, or no speech found).
        """
        wav = resample(as_mono_float32(wav, name), sample_rate, self.config.sample_rate)
        if not np.any(wav):
            raise AudioError(f"{name}: the audio is completely silent")
        wav = dsp.normalize_volume(wav, self.config.target_dbfs)
        wav = preprocess.trim_long_silences(wav, self.config)
        if len(wav) == 0:
            raise AudioError(f"{name}: no speech found (silence trimming removed everything)")
        seconds = len(wav) / self.config.sample_rate
        if seconds < self.config.short_speech_seconds:
            log.warning("%s: only %.2f s of speech after trimming; the voice will match poorly "
                        "(about 2 s or more is recommended)", name, seconds)
        return wav

    def load_reference(self, path: str | os.PathLike, *, max_seconds: float | None = MAX_SECONDS) -> np.ndarray:
        """Read a file and preprocess it as RTVC's ``preprocess_wav(path)``."""
        wav, sample_rate = load_audio(path, sample_rate=self.config.sample_rate, max_seconds=max_seconds)
        return self.preprocess(wav, sample_rate, str(path))

    # -- wav -> embedding ---------------------------------------------------------------------

    def embed_frames(self, frames: np.ndarray) -> np.ndarray:
        """frames: (B, T, 40) float32 power mel -> (B, 256) float32 partial embeddings.

        On the CPU with one torch thread whatever torch's count: its float32 products round
        differently with another thread count (by ~5e-8), and everything downstream (a seeded
        clone's samples) would then depend on how many threads ran the encoder."""
        threads = torch_threads(1) if self.device.type == "cpu" else nullcontext()
        with torch.inference_mode(), threads:
            x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).to(self.device)
            return self.net(x).cpu().numpy()

    def embed_utterance(self, wav: np.ndarray, *, using_partials: bool = True,
                        return_partials: bool = False):
        """RTVC's embed_utterance on a preprocessed 16 kHz wav -> (256,) float32, L2 norm 1.

        With ``return_partials``: (embed, partial_embeds (k, 256), wav_slices list[slice]).
        Partials are embedded 64 at a time and their mel frames computed per group, so memory
        stays bounded for long audio (about 8 bytes per input sample in all).
        """
        cfg = self.config
        if not using_partials:
            embed = self.embed_frames(preprocess.mel_frames(wav, cfg)[None])[0]
            return (embed, None, None) if return_partials else embed
        wav_slices, mel_slices = preprocess.partial_slices(
            len(wav), cfg.partial_frames, cfg.min_pad_coverage, cfg.partial_overlap, cfg.hop_length)
        partials = []
        for g in range(0, len(mel_slices), _PARTIALS_PER_BATCH):
            group = mel_slices[g:g + _PARTIALS_PER_BATCH]
            first, stop = group[0].start, group[-1].stop
            frames = preprocess.mel_frames_range(wav, first, stop, cfg)
            batch = np.stack([frames[s.start - first:s.stop - first] for s in group])
            partials.append(self.embed_frames(batch))
        partial_embeds = np.concatenate(partials)
        raw = partial_embeds.mean(axis=0)
        embed = raw / np.linalg.norm(raw, 2)
        return (embed, partial_embeds, wav_slices) if return_partials else embed

    def embed(self, reference, sample_rate: int | None = None, *,
              max_seconds: float | None = MAX_SECONDS) -> np.ndarray:
        """Voice embedding of a reference: a path, a list of paths, or (wav, sample_rate).

        Several clips give the paper's speaker embedding: their utterance embeddings averaged
        and re-normalised. Returns (256,) float32 with unit L2 norm. Each clip is cut after
        ``max_seconds`` of audio (with a warning; None: no limit): the encoder needs ~10 s.
        """
        return self.embed_speaker([self._reference_wav(r, sample_rate, max_seconds)
                                   for r in _as_reference_list(reference, sample_rate)])

    def embed_speaker(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        """Preprocessed 16 kHz wavs of one speaker (``load_reference``'s output) -> (256,) float32,
        unit L2 norm: their utterance embeddings averaged and re-normalised (one wav: its own)."""
        if len(wavs) == 0:
            raise InputError("no reference audio given (empty list)")
        embeds = np.stack([self.embed_utterance(w) for w in wavs])
        if len(embeds) == 1:
            return embeds[0]
        mean = embeds.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)

    def _reference_wav(self, ref, sample_rate: int | None, max_seconds: float | None) -> np.ndarray:
        if isinstance(ref, tuple):
            wav, rate = ref
            rate = check_sample_rate(rate, "audio array")
            wav = np.asarray(wav)
            if max_seconds is not None and max(wav.shape, default=0) > max_seconds * rate:
                log.warning("audio array: longer than %g s: only the first %g s are used", max_seconds, max_seconds)
                n = int(max_seconds * rate)
                wav = wav[:n] if wav.ndim == 1 or wav.shape[0] > wav.shape[1] else wav[:, :n]
            return self.preprocess(wav, rate, "audio array")
        return self.load_reference(ref, max_seconds=max_seconds)


def _as_reference_list(reference, sample_rate: int | None) -> list:
    """Normalise the accepted reference forms to a list of paths or (wav, rate) pairs."""
    if hasattr(reference, "detach"):  # a torch tensor
        reference = reference.detach().cpu().numpy()
    if isinstance(reference, tuple) and len(reference) == 2 and hasattr(reference[0], "detach"):
        reference = (reference[0].detach().cpu().numpy(), reference[1])
    if isinstance(reference, (str, os.PathLike)):
        return [reference]
    if isinstance(reference, np.ndarray):
        if sample_rate is None:
            raise InputError("audio array given without its sample rate: pass (wav, sample_rate)")
        return [(reference, sample_rate)]
    if isinstance(reference, tuple) and len(reference) == 2 and isinstance(reference[0], np.ndarray):
        return [reference]
    if isinstance(reference, Sequence) and not isinstance(reference, (bytes, str)):
        if len(reference) == 0:
            raise InputError("no reference audio given (empty list)")
        refs = []
        for r in reference:
            refs += _as_reference_list(r, sample_rate)
        return refs
    raise InputError(f"reference must be a path, a list of paths or (wav, sample_rate); "
                     f"got {type(reference).__name__}")
