"""The whole SV2TTS pipeline: reference audio + text -> cloned speech (16 kHz float32).

The only module that knows all three stages. A :class:`Pipeline` owns its loaded models
(each loaded once, on first use, under a lock) and is safe to call from several threads.
The module-level functions use a lazily built default pipeline.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE
from .errors import InputError, TextError

log = logging.getLogger(__name__)

GRIFFIN_LIM = "griffinlim"
_OUTPUT_PAD_SECONDS = 1.0  # RTVC's demo appends 1 s of zeros before its final trim


class Pipeline:
    """Holds the encoder, synthesizer and vocoder of a cloning service.

    Each model argument is a loaded model, a checkpoint path, or None for the default
    (built-in encoder; synthesizer and vocoder from the model cache, downloaded on first
    use; ``download=False``, or ``$SV2TTS_OFFLINE`` set, raises ModelNotFoundError instead).
    ``vocoder="griffinlim"`` uses Griffin-Lim instead of WaveRNN.
    """

    def __init__(self, encoder=None, synthesizer=None, vocoder=None, *, device: str = "cpu",
                 download: bool | None = None):
        self.device = resolve_device(device)
        self.download = download
        self._specs = {"encoder": encoder, "synthesizer": synthesizer, "vocoder": vocoder}
        self._loaded: dict[str, object] = {}
        self._lock = threading.Lock()

    # -- models, loaded once ---------------------------------------------------------------

    def _model(self, stage: str):
        model = self._loaded.get(stage)
        if model is None:
            with self._lock:
                model = self._loaded.get(stage)
                if model is None:
                    start = time.perf_counter()
                    log.debug("loading the %s", stage)
                    model = self._loaded[stage] = _load_stage(
                        stage, self._specs[stage], self.device, self.download)
                    log.debug("loaded the %s in %.2f s", stage, time.perf_counter() - start)
        return model

    @property
    def encoder(self):
        return self._model("encoder")

    @property
    def synthesizer(self):
        return self._model("synthesizer")

    @property
    def vocoder(self):
        return self._model("vocoder")

    def load_all(self) -> "Pipeline":
        """Load (and download if needed) every model now instead of on first use."""
        for stage in self._specs:
            self._model(stage)
        return self

    # -- the stages --------------------------------------------------------------------------

    def embed(self, reference, *, sample_rate: int | None = None) -> np.ndarray:
        """Voice embedding (256,) float32 of a reference: path(s), (wav, rate) or a voice .npy."""
        if _is_voice_file(reference):
            return load_voice(reference)
        return self.encoder.embed(reference, sample_rate)

    def synthesize(self, text, embedding, *, seed: int | None = None, prenet_dropout: bool = True,
                   max_frames: int = 2000):
        """Text (str or list of str) + embedding(s) -> mel (80, T) float32 (or a list of them)."""
        return self.synthesizer.synthesize(text, embedding, seed=seed, prenet_dropout=prenet_dropout,
                                           max_frames=max_frames)

    def vocode(self, mel: np.ndarray, *, seed: int | None = None, precision: str = "float32",
               progress: bool | None = None, **options) -> np.ndarray:
        """Mel (80, T) -> waveform float32 at 16 kHz (WaveRNN, or Griffin-Lim if chosen)."""
        vocoder = self.vocoder
        if vocoder == GRIFFIN_LIM:
            from .synthesizer.audio import griffin_lim
            from .vocoder import validate_mel

            return griffin_lim(validate_mel(mel), seed=seed).astype(np.float32, copy=False)
        return vocoder.vocode(mel, seed=seed, precision=precision, progress=progress, **options)

    def clone(self, reference, text: str, *, seed: int | None = None, precision: str = "float32",
              progress: bool | None = None, max_frames: int = 2000) -> np.ndarray:
        """Speak ``text`` in the voice of ``reference`` -> (n,) float32 at 16 kHz.

        Long text is split into sentences, synthesised in batches and vocoded once over the
        joined mel. The result is post-processed as RTVC's demo does: 1 s of zeros appended,
        volume raised to -30 dBFS (increase only), long silences trimmed (webrtcvad).
        """
        if not isinstance(text, str) or not text.strip():
            raise TextError("the text is empty" if isinstance(text, str)
                            else f"text: expected a str, got {type(text).__name__}")
        embedding = self.embed(reference)
        mel = self.synthesize(text, embedding, seed=seed, max_frames=max_frames)
        wav = self.vocode(mel, seed=seed, precision=precision, progress=progress)
        return postprocess_output(wav)


def postprocess_output(wav: np.ndarray) -> np.ndarray:
    """RTVC demo_cli's final step: pad 1 s, normalise volume (increase only), trim silences.

    If trimming would remove everything (no speech detected), the untrimmed audio is kept.
    """
    from .encoder import preprocess

    wav = np.pad(np.asarray(wav, dtype=np.float32), (0, int(_OUTPUT_PAD_SECONDS * SAMPLE_RATE)))
    wav = preprocess.normalize_volume(wav)
    trimmed = preprocess.trim_long_silences(wav)
    if len(trimmed) == 0:
        log.warning("no speech detected in the generated audio; silence trimming skipped")
        return wav
    return trimmed


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'; 'cuda' without a GPU is an InputError."""
    if device not in ("cpu", "cuda", "auto") and not str(device).startswith("cuda:"):
        raise InputError(f"device must be cpu, cuda or auto, got {device!r}")
    if device == "cpu":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda" if device == "auto" else device
    if device == "auto":
        return "cpu"
    raise InputError(f"device {device!r} requested but CUDA is not available")


def _load_stage(stage: str, spec, device: str, download: bool | None):
    from . import models

    if stage == "vocoder" and isinstance(spec, str) and spec.lower() in (GRIFFIN_LIM, "griffin-lim"):
        return GRIFFIN_LIM
    if spec is not None and not isinstance(spec, (str, os.PathLike)):
        return spec  # already loaded
    if stage == "encoder":
        from .encoder import Encoder

        return Encoder.load(spec, device=device)
    path = Path(spec) if spec is not None else models.ensure_model(stage, download_missing=download)
    if stage == "synthesizer":
        from .synthesizer import Synthesizer

        return Synthesizer.load(path, device=device)
    from .vocoder import Vocoder

    return Vocoder.load(path, device=device)


def _is_voice_file(reference) -> bool:
    return isinstance(reference, (str, os.PathLike)) and Path(reference).suffix.lower() == ".npy"


def load_voice(path: str | os.PathLike) -> np.ndarray:
    """Read a voice saved by ``sv2tts embed`` (.npy): (256,) float32, finite, unit norm."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: voice file not found")
    try:
        voice = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npy voice file ({e})") from None
    if voice.shape != (256,) or not np.issubdtype(voice.dtype, np.floating):
        raise InputError(f"{path}: expected a (256,) float voice embedding, got {voice.dtype} {voice.shape}")
    if not np.isfinite(voice).all() or np.linalg.norm(voice) == 0:
        raise InputError(f"{path}: voice embedding contains NaN/inf or is all zeros")
    return (voice / np.linalg.norm(voice)).astype(np.float32)


def save_voice(path: str | os.PathLike, embedding: np.ndarray) -> Path:
    """Save a (256,) embedding as .npy, atomically."""
    import io

    from .audio import write_bytes_atomic

    buf = io.BytesIO()
    np.save(buf, np.asarray(embedding, dtype=np.float32), allow_pickle=False)
    path = Path(path)
    write_bytes_atomic(path, buf.getvalue())
    return path


# -- module-level API over a default pipeline --------------------------------------------------

_default: Pipeline | None = None
_default_lock = threading.Lock()


def default_pipeline() -> Pipeline:
    """The shared pipeline used by the module-level functions (built on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Pipeline()
        return _default


def _pipeline_for(**models) -> Pipeline:
    if all(m is None for m in models.values()):
        return default_pipeline()
    base = default_pipeline()
    return Pipeline(**{k: (v if v is not None else base._loaded.get(k)) for k, v in models.items()})


def embed(reference, *, encoder=None, sample_rate: int | None = None) -> np.ndarray:
    """Voice embedding of ``reference`` -> (256,) float32, unit L2 norm.

    reference: an audio path, a list of paths (one voice from several clips: embeddings
    averaged and re-normalised), a (wav, sample_rate) pair, or a saved voice .npy.
    """
    return _pipeline_for(encoder=encoder).embed(reference, sample_rate=sample_rate)


def synthesize(text, embedding, *, synthesizer=None, seed: int | None = None,
               prenet_dropout: bool = True, max_frames: int = 2000):
    """Text + voice -> mel (80, T) float32 on RTVC's scale; a list of str gives a list."""
    return _pipeline_for(synthesizer=synthesizer).synthesize(
        text, embedding, seed=seed, prenet_dropout=prenet_dropout, max_frames=max_frames)


def vocode(mel: np.ndarray, *, vocoder=None, batched: bool = True, target: int = 8000,
           overlap: int = 800, seed: int | None = None, precision: str = "float32",
           progress: bool | None = None) -> np.ndarray:
    """Mel (80, T) -> float32 waveform at 16 kHz; ``vocoder="griffinlim"`` for Griffin-Lim."""
    return _pipeline_for(vocoder=vocoder).vocode(
        mel, seed=seed, precision=precision, progress=progress, batched=batched, target=target,
        overlap=overlap)


def clone(reference, text: str, *, encoder=None, synthesizer=None, vocoder=None,
          seed: int | None = None, precision: str = "float32") -> np.ndarray:
    """Speak ``text`` in the voice of ``reference`` -> (n,) float32 at 16 kHz (see Pipeline.clone)."""
    pipe = _pipeline_for(encoder=encoder, synthesizer=synthesizer, vocoder=vocoder)
    return pipe.clone(reference, text, seed=seed, precision=precision)
