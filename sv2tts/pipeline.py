"""The whole SV2TTS pipeline: reference audio + text -> cloned speech (16 kHz float32).

The only module that knows all three stages, and the only one that plans text: a long text is
split into sentence groups (``sentence_groups``), synthesised, joined with a short pause
(``clone``: one vocoder pass over the joined mel) or vocoded group by group (``stream``).
A :class:`Pipeline` owns its loaded models, each loaded once (per checkpoint path, under a
lock), and is safe to call from several threads. The module-level functions share one store
of loaded models, keyed by path, so repeated calls with the same paths load each file once.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .core import dsp
from .core.audio import MAX_SECONDS
from .core.dsp import SAMPLE_RATE
from .core.errors import InputError, Sv2ttsError, TextError
from .core.runtime import check_seed, derive_seed, resolve_device
from .voices import is_voice_file, load_voice

log = logging.getLogger(__name__)

GRIFFIN_LIM = "griffinlim"  # the vocoder= value (CLI, module functions) for Griffin-Lim
PAUSE_FRAMES = 12  # 0.15 s of silence between the sentence groups of a long text
MAX_TEXT_CHARS = 5000  # default cap on one call's text (about 5 minutes of speech)
SILENCE = -4.0  # mel floor on RTVC's symmetric scale
_OUTPUT_PAD_SECONDS = 1.0  # RTVC's demo appends 1 s of zeros before its final trim
_INTERFACE = {"encoder": "embed", "synthesizer": "synthesize", "vocoder": "vocode"}  # stage -> method


class _ModelStore:
    """Loaded models keyed by (stage, checkpoint path, device): each file is loaded once."""

    def __init__(self) -> None:
        self._models: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def get(self, stage: str, spec, device, download: bool | None):
        if spec is not None and not isinstance(spec, (str, os.PathLike)):
            if not hasattr(spec, _INTERFACE[stage]):
                raise InputError(f"{stage}={spec!r}: expected a loaded {stage}, a checkpoint path or None")
            return spec  # already a loaded model
        if stage == "vocoder" and spec is not None and str(spec).lower() in (GRIFFIN_LIM, "griffin-lim"):
            from .vocoder import GriffinLim

            return GriffinLim()
        path = self._path(stage, spec, download)
        key = (stage, path, str(device))
        with self._lock:  # one loader at a time: a second caller waits and reuses the model
            model = self._models.get(key)
            if model is None:
                start = time.perf_counter()
                log.debug("loading the %s", stage)
                model = self._models[key] = _load(stage, path, device)
                log.debug("loaded the %s in %.2f s", stage, time.perf_counter() - start)
        return model

    @staticmethod
    def _path(stage: str, spec, download: bool | None) -> Path | None:
        if spec is not None:
            return Path(spec).resolve()
        if stage == "encoder":
            return None  # the built-in weights
        from . import models

        return models.ensure_model(stage, download_missing=download).resolve()


def _load(stage: str, path: Path | None, device):
    if stage == "encoder":
        from .encoder import Encoder

        return Encoder.load(path, device=device)
    if stage == "synthesizer":
        from .synthesizer import Synthesizer

        return Synthesizer.load(path, device=device)
    from .vocoder import Vocoder

    return Vocoder.load(path, device=device)


class Pipeline:
    """Holds the encoder, synthesizer and vocoder of a cloning service.

    Each model argument is a loaded model, a checkpoint path, or None for the default
    (built-in encoder; synthesizer and vocoder from the model cache, downloaded on first
    use; ``download=False``, or ``$SV2TTS_OFFLINE`` / ``$HF_HUB_OFFLINE`` set, raises
    ModelNotFoundError instead).
    ``vocoder="griffinlim"`` (or a ``GriffinLim()``) uses Griffin-Lim instead of WaveRNN.
    ``max_text_chars`` caps the text of one call (None: no limit).
    """

    def __init__(self, encoder=None, synthesizer=None, vocoder=None, *, device: str = "cpu",
                 download: bool | None = None, max_text_chars: int | None = MAX_TEXT_CHARS):
        self.device = resolve_device(device)
        self.max_text_chars = max_text_chars
        self.download = download
        self._specs = {"encoder": encoder, "synthesizer": synthesizer, "vocoder": vocoder}
        self._store = _ModelStore()
        self._loaded: dict[str, object] = {}  # stage -> model, once found in the store

    # -- models, loaded once ---------------------------------------------------------------

    def _model(self, stage: str):
        """The model of ``stage``: resolved (path, cache check) and loaded on first use only."""
        model = self._loaded.get(stage)
        if model is None:
            model = self._loaded[stage] = self._store.get(stage, self._specs[stage], self.device, self.download)
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
        self._require(*_INTERFACE)
        return self

    def _require(self, *stages: str) -> None:
        """Load these models now: a missing or wrong file fails before any other work (and
        one message lists every default model missing from the cache)."""
        defaults = [s for s in stages if self._specs[s] is None and s != "encoder"]
        for stage in stages:  # the models given explicitly first: their errors need no network
            if stage not in defaults:
                self._model(stage)
        defaults = [s for s in defaults if s not in self._loaded]
        if defaults:
            from . import models

            models.ensure_models(defaults, download_missing=self.download)
            for stage in defaults:
                self._model(stage)

    # -- the stages --------------------------------------------------------------------------

    def embed(self, reference, *, sample_rate: int | None = None,
              max_seconds: float | None = MAX_SECONDS) -> np.ndarray:
        """Voice embedding (256,) float32 of a reference: path(s), (wav, rate) or a voice .npy.

        Each clip is cut after ``max_seconds`` (a warning; None: no limit)."""
        if is_voice_file(reference):
            return load_voice(reference)
        return self.encoder.embed(reference, sample_rate, max_seconds=max_seconds)

    def synthesize(self, text, embedding, *, seed: int | None = None, prenet_dropout: bool = True,
                   max_frames: int = 2000, precision: str | None = None):
        """Text (str or list of str) + embedding(s) -> mel (80, T) float32 (or a list of them).

        A long text is split into sentence groups, synthesised in batches and joined with
        ``PAUSE_FRAMES`` of silence.
        """
        single = isinstance(text, str)
        texts = [text] if single else text
        if not isinstance(texts, (list, tuple)) or not texts:
            raise TextError("text: expected a str or a non-empty list of str")
        mels = self._synthesize([sentence_groups(t, self.max_text_chars) for t in texts], embedding, seed=seed,
                                prenet_dropout=prenet_dropout, max_frames=max_frames, precision=precision)
        return mels[0] if single else mels

    def _synthesize(self, groups: list[list[str]], embedding, **options) -> list[np.ndarray]:
        """The sentence groups of each text, synthesised in one batched call, joined per text."""
        if getattr(embedding, "ndim", 1) == 2 and len(embedding) == len(groups):  # one voice per text
            embedding = np.concatenate([np.repeat(np.asarray(e)[None], len(g), axis=0)
                                        for e, g in zip(embedding, groups)])
        mels = self.synthesizer.synthesize([s for g in groups for s in g], embedding, **options)
        joined, start = [], 0
        for g in groups:
            joined.append(join_mels(mels[start:start + len(g)]))
            start += len(g)
        return joined

    def vocode(self, mel: np.ndarray, *, seed: int | None = None, precision: str | None = None,
               progress: bool | None = None, **options) -> np.ndarray:
        """Mel (80, T) -> waveform float32 at 16 kHz with this pipeline's vocoder.

        precision: None for the vocoder's own (WaveRNN: float32 unless loaded otherwise).
        options: WaveRNN's batched / target / overlap.
        """
        return self.vocoder.vocode(mel, seed=seed, precision=precision, progress=progress, **options)

    def clone(self, reference, text: str, *, seed: int | None = None, precision: str | None = None,
              progress: bool | None = None, max_frames: int = 2000) -> np.ndarray:
        """Speak ``text`` in the voice of ``reference`` -> (n,) float32 at 16 kHz.

        Long text is split into sentence groups, synthesised in batches and vocoded once over
        the joined mel. The result is post-processed as RTVC's demo does: 1 s of zeros
        appended, volume raised to -30 dBFS (increase only), long silences trimmed (webrtcvad).
        """
        groups = sentence_groups(text, self.max_text_chars)  # bad text, then missing models, fail first
        self._require("synthesizer", "vocoder")
        embedding = self.embed(reference)
        mel = self._synthesize([groups], embedding, seed=seed, max_frames=max_frames, precision=precision)[0]
        return postprocess_output(self.vocode(mel, seed=seed, precision=precision, progress=progress))

    def clone_many(self, items: Sequence[tuple], *, precision: str | None = None, progress: bool | None = None,
                   max_frames: int = 2000) -> list[np.ndarray | Sv2ttsError]:
        """Several clones at once: ``items`` are ``(reference, text)`` or ``(reference, text, seed)``.

        Each item is embedded and synthesised on its own, then all are vocoded together
        (``Vocoder.vocode_many``: their folds share each step's weight loads), which is faster
        than one ``clone`` per item. Each item's audio is exactly what ``clone(reference, text,
        seed=seed)`` gives, whatever it is batched with. Returns one entry per item, in order:
        (n,) float32 at 16 kHz, or the Sv2ttsError of that item (its message starts with the
        item's number and reference; ``__cause__`` is the error unprefixed) - one bad item does
        not stop the others. Missing or broken models raise for all.
        """
        self._require("synthesizer", "vocoder")
        results: list = [None] * len(items)
        todo = []  # (index, mel, seed)
        for i, item in enumerate(items):
            try:
                if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
                    raise InputError("expected (reference, text) or (reference, text, seed)")
                reference, text, seed = (*item, None)[:3]
                groups = sentence_groups(text, self.max_text_chars)
                seed = check_seed(seed)
                mel = self._synthesize([groups], self.embed(reference), seed=seed, max_frames=max_frames,
                                       precision=precision)[0]
                todo.append((i, mel, seed))
            except Sv2ttsError as e:
                name = item[0] if isinstance(item, (tuple, list)) and item else item
                label = name if isinstance(name, (str, os.PathLike)) else type(name).__name__
                results[i] = type(e)(f"item {i + 1} ({label}): {e}")
                results[i].__cause__ = e  # the item's own error, unprefixed
        wavs = self.vocoder.vocode_many([m for _, m, _ in todo], seeds=[s for _, _, s in todo],
                                        precision=precision, progress=progress)
        for (i, _, _), wav in zip(todo, wavs):
            results[i] = postprocess_output(wav)
        return results

    def stream(self, reference, text: str, *, seed: int | None = None, precision: str | None = None,
               max_frames: int = 2000, timings: dict[str, float] | None = None) -> Iterator[np.ndarray]:
        """Speak ``text`` like :meth:`clone`, yielding (n,) float32 16 kHz chunks in order.

        One chunk per sentence (even in a short text), yielded as soon as it is vocoded (the
        first long before the whole text is done). Each chunk is post-processed like
        ``clone``'s result. The same seed gives the same chunks (sentence i uses a seed derived
        from ``seed`` and i); they differ from ``clone``'s audio, which synthesises a short text
        in one pass and vocodes the joined mel once.
        ``timings``: a dict that receives the seconds spent so far in "embed", "synthesize"
        and "vocode" (updated before each chunk is yielded).
        """
        groups = sentence_groups(text, self.max_text_chars, per_sentence=True)
        seed = check_seed(seed)
        self._require("synthesizer", "vocoder")
        timings = {} if timings is None else timings
        timings.update(embed=0.0, synthesize=0.0, vocode=0.0)
        with _timed(timings, "embed"):
            embedding = self.embed(reference)
        for i, group in enumerate(groups):
            group_seed = derive_seed(seed, i)
            with _timed(timings, "synthesize"):
                mel = self.synthesizer.synthesize(group, embedding, seed=group_seed, max_frames=max_frames,
                                                  precision=precision)
            with _timed(timings, "vocode"):
                wav = postprocess_output(self.vocode(mel, seed=group_seed, precision=precision, progress=False))
            yield wav


@contextlib.contextmanager
def _timed(timings: dict[str, float], stage: str):
    """Add the seconds the block takes to ``timings[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] += time.perf_counter() - start


def sentence_groups(text: str, max_chars: int | None = MAX_TEXT_CHARS, *, per_sentence: bool = False) -> list[str]:
    """Split a text into the groups it is synthesised in: the whole text when it fits in one
    pass (~200 characters), else its sentences; ``per_sentence``: always its sentences.

    Groups with nothing pronounceable are skipped with a warning; TextError when the text is
    not a str, empty, longer than ``max_chars`` (None: no limit), or has nothing to say at all.
    """
    from .synthesizer import is_pronounceable, split_sentences

    if not isinstance(text, str):
        raise TextError(f"text: expected a str, got {type(text).__name__}")
    if not text.strip():
        raise TextError("the text is empty")
    if max_chars is not None and len(text) > max_chars:
        raise TextError(f"the text has {len(text):,} characters; the limit is {max_chars:,} "
                        f"(max_text_chars=, --max-text-chars): split it into several calls")
    letters = [c for c in text if c.isalpha()]
    if sum(c > "\u024f" for c in letters) > len(letters) / 2:  # beyond Latin Extended-B
        log.warning("%r is mostly not in the Latin alphabet: the model speaks English and will read "
                    "a romanised form (unidecode) of it", text[:40])
    groups = []
    for group in split_sentences(text, whole_if_fits=not per_sentence):
        if is_pronounceable(group):
            groups.append(group)
        else:
            log.warning("skipped %r: it has no letter to pronounce", group[:40])
    if not groups:
        raise TextError(f"{text[:40]!r}: nothing to synthesise: none of its characters is a letter "
                        f"the model knows")
    return groups


def join_mels(parts: list[np.ndarray]) -> np.ndarray:
    """Mels (80, T_i) joined in order with ``PAUSE_FRAMES`` of silence between them."""
    if len(parts) == 1:
        return parts[0]
    pause = np.full((parts[0].shape[0], PAUSE_FRAMES), SILENCE, dtype=np.float32)
    out = [parts[0]]
    for p in parts[1:]:
        out += [pause, p]
    return np.concatenate(out, axis=1)


def postprocess_output(wav: np.ndarray) -> np.ndarray:
    """RTVC demo_cli's final step: pad 1 s, normalise volume (increase only), trim silences.

    If trimming would remove everything (no speech detected), the untrimmed audio is kept.
    """
    wav = np.pad(np.asarray(wav, dtype=np.float32), (0, int(_OUTPUT_PAD_SECONDS * SAMPLE_RATE)))
    wav = dsp.normalize_volume(wav)
    trimmed = dsp.trim_long_silences(wav)
    if len(trimmed) == 0:
        log.warning("no speech detected in the generated audio; silence trimming skipped")
        return wav
    return trimmed


# -- module-level API over shared models --------------------------------------------------------

_store = _ModelStore()


def _pipeline(encoder=None, synthesizer=None, vocoder=None) -> Pipeline:
    """A pipeline over the shared model store: each path is loaded once per process."""
    pipe = Pipeline(encoder, synthesizer, vocoder)
    pipe._store = _store
    return pipe


def embed(reference, *, encoder=None, sample_rate: int | None = None,
          max_seconds: float | None = MAX_SECONDS) -> np.ndarray:
    """Voice embedding of ``reference`` -> (256,) float32, unit L2 norm.

    reference: an audio path, a list of paths (one voice from several clips: embeddings
    averaged and re-normalised), a (wav, sample_rate) pair, or a saved voice .npy.
    """
    return _pipeline(encoder=encoder).embed(reference, sample_rate=sample_rate, max_seconds=max_seconds)


def synthesize(text, embedding, *, synthesizer=None, seed: int | None = None,
               prenet_dropout: bool = True, max_frames: int = 2000, precision: str = "float32"):
    """Text + voice -> mel (80, T) float32 on RTVC's scale; a list of str gives a list."""
    return _pipeline(synthesizer=synthesizer).synthesize(
        text, embedding, seed=seed, prenet_dropout=prenet_dropout, max_frames=max_frames, precision=precision)


def vocode(mel: np.ndarray, *, vocoder=None, batched: bool = True, target: int = 8000,
           overlap: int = 800, seed: int | None = None, precision: str = "float32",
           progress: bool | None = None) -> np.ndarray:
    """Mel (80, T) -> float32 waveform at 16 kHz; ``vocoder="griffinlim"`` for Griffin-Lim."""
    return _pipeline(vocoder=vocoder).vocode(mel, seed=seed, precision=precision, progress=progress,
                                             batched=batched, target=target, overlap=overlap)


def clone(reference, text: str, *, encoder=None, synthesizer=None, vocoder=None,
          seed: int | None = None, precision: str = "float32", max_frames: int = 2000) -> np.ndarray:
    """Speak ``text`` in the voice of ``reference`` -> (n,) float32 at 16 kHz (see Pipeline.clone)."""
    return _pipeline(encoder, synthesizer, vocoder).clone(reference, text, seed=seed, precision=precision,
                                                          max_frames=max_frames)


def clone_many(items: Sequence[tuple], *, encoder=None, synthesizer=None, vocoder=None,
               precision: str = "float32", progress: bool | None = None) -> list[np.ndarray | Sv2ttsError]:
    """Several ``(reference, text[, seed])`` clones vocoded together -> audio or error per item
    (see :meth:`Pipeline.clone_many`: each item's audio is what ``clone`` gives it alone)."""
    return _pipeline(encoder, synthesizer, vocoder).clone_many(items, precision=precision, progress=progress)


def stream(reference, text: str, *, encoder=None, synthesizer=None, vocoder=None,
           seed: int | None = None, precision: str = "float32", max_frames: int = 2000) -> Iterator[np.ndarray]:
    """Chunks of ``text`` spoken in the voice of ``reference`` (see Pipeline.stream)."""
    return _pipeline(encoder, synthesizer, vocoder).stream(reference, text, seed=seed, precision=precision,
                                                           max_frames=max_frames)
