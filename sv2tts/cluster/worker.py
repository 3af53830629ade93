"""What a cluster worker does: models loaded once, groups of items cloned with ``clone_many``.

A group arrives as :class:`Job` s and the :class:`Reference` s they speak in: the reference's
bytes (read by the driver: no shared filesystem needed), or its path on a filesystem every
node sees, or a saved voice the driver already read. Each reference is embedded once per
worker (a voice cache keyed by content), then the group goes through ``clone_many`` exactly as
the local batch sends it, so each item gets the same audio as there. Each item comes back as
an :class:`Outcome`: its encoded audio (WAV or FLAC bytes, what ``write_audio`` writes, for
the driver to write), or its error message as the local batch's report gives it. Nothing
here imports Ray except to fetch a reference's bytes from Ray's object store.
"""
from __future__ import annotations

import collections
import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..batch import audio_seconds, clone_jobs, error_message
from ..core.audio import encode_audio
from ..core.errors import InputError, Sv2ttsError
from ..pipeline import MAX_TEXT_CHARS, Pipeline

log = logging.getLogger(__name__)

VOICE_CACHE = 4096  # embeddings (1 KB each) a worker keeps


@dataclass(frozen=True)
class Reference:
    """A reference as it travels to a worker.

    key: what identifies its content (a hash of its bytes, or path + size + mtime);
    name: the path as the user wrote it (error messages name it, as in the local batch);
    data: its bytes, or a Ray ObjectRef of them; path: where every node reads it (shared
    filesystem) when ``data`` is None; voice: a saved voice (.npy) the driver already read;
    error: why the driver could not read it (its items fail with it, as in the local batch).
    """

    key: str
    name: str
    data: object = None
    path: str | None = None
    voice: np.ndarray | None = None
    error: Sv2ttsError | None = None


@dataclass(frozen=True)
class Job:
    """One item of a group: its index in the batch, its reference's key, text, seed, and its
    output's name (its suffix gives the format)."""

    index: int
    reference: str
    text: str
    seed: int | None
    output: str


@dataclass(frozen=True)
class Outcome:
    """One item's result: ``error`` (a message), or ``audio`` (encoded bytes) and its ``seconds``."""

    index: int
    error: str | None = None
    audio: bytes = b""
    seconds: float = 0.0


@dataclass(frozen=True)
class GroupResult:
    """A group's outcomes, and the library's log records made meanwhile (``forward_logs``):
    ``(level, logger name, message)``, for the driver to log."""

    outcomes: list[Outcome]
    logs: list[tuple[int, str, str]]


class CloneWorker:
    """A worker's state: a loaded Pipeline and a cache of voices. Ray runs it as an actor
    (one call at a time); ``CloneBatches`` runs it inside ``Dataset.map_batches``.

    A model that cannot be loaded is not raised here (an actor whose constructor fails is
    retried by Ray, then reported with a traceback): ``ready()`` returns its message.
    ``log_level``: the level of the library's logger here; ``forward_logs``: its records go
    back with each group (``GroupResult.logs``) instead of this process's stderr.
    """

    def __init__(self, encoder=None, synthesizer=None, vocoder=None, *, device: str = "cpu",
                 max_text_chars: int | None = MAX_TEXT_CHARS, threads: int | None = None,
                 download: bool | None = None, log_level: int | None = None, forward_logs: bool = False) -> None:
        if threads is not None:  # Ray sets OMP_NUM_THREADS=1 in its workers: give torch its CPUs
            import torch

            torch.set_num_threads(threads)
        self._records = _Records()
        library = logging.getLogger("sv2tts")
        if log_level is not None:
            library.setLevel(log_level)
        if forward_logs:
            library.addHandler(self._records)
            library.propagate = False
        self.error: str | None = None
        self._voices: collections.OrderedDict[str, np.ndarray | Sv2ttsError] = collections.OrderedDict()
        self._known = _KnownVoices()
        self._tmp = tempfile.TemporaryDirectory(prefix="sv2tts-worker-")
        try:
            self.pipeline = Pipeline(encoder, synthesizer, vocoder, device=device, download=download,
                                     max_text_chars=max_text_chars).load_all()
        except Sv2ttsError as e:
            self.error = str(e)
            return
        self._group = Pipeline(self._known, self.pipeline.synthesizer, self.pipeline.vocoder,
                               device=device, max_text_chars=max_text_chars)

    def ready(self) -> dict:
        """Where this worker runs, and why it cannot work (``error``) if it cannot."""
        import torch

        return {"pid": os.getpid(), "host": socket.gethostname(), "threads": torch.get_num_threads(),
                "error": self.error}

    def sees(self, probes: list[tuple[str, int, int]]) -> bool:
        """Whether every ``(path, size, mtime_ns)`` is a file this worker sees with that size
        and time: the driver's files are on a filesystem shared with this worker."""
        for path, size, mtime in probes:
            try:
                st = os.stat(path)
            except OSError:
                return False
            if (st.st_size, st.st_mtime_ns) != (size, mtime):
                return False
        return True

    def clone(self, jobs: list[Job], references: dict[str, Reference], *, precision: str | None = None,
              max_frames: int = 2000) -> GroupResult:
        """Clone a group: each job's audio, encoded for its output."""
        if self.error is not None:
            raise InputError(self.error)
        self._records.records = []
        self._known.voices = {key: self._voice(ref) for key, ref in references.items()}
        try:
            wavs = clone_jobs(self._group, [(_Voice(j.reference), j.text, j.seed) for j in jobs],
                              precision=precision, max_frames=max_frames)
        except Exception as e:  # anything unforeseen: the group's items fail, the worker goes on
            log.exception("a group failed")
            wavs = [e] * len(jobs)
        finally:
            self._known.voices = {}
        outcomes = [self._outcome(job, wav) for job, wav in zip(jobs, wavs)]
        return GroupResult(outcomes, self._records.records)

    def _outcome(self, job: Job, wav) -> Outcome:
        if not isinstance(wav, np.ndarray):
            return Outcome(job.index, error=error_message(wav))
        try:
            return Outcome(job.index, audio=encode_audio(job.output, wav), seconds=audio_seconds(wav))
        except Sv2ttsError as e:
            return Outcome(job.index, error=error_message(e))

    def _voice(self, ref: Reference) -> np.ndarray | Exception:
        """The embedding of ``ref`` (or its error), computed once per content."""
        if ref.error is not None:
            return ref.error
        if ref.voice is not None:
            return ref.voice
        cached = self._voices.get(ref.key)
        if cached is not None:
            self._voices.move_to_end(ref.key)
            return cached
        try:
            voice = self._embed(ref)
        except Sv2ttsError as e:
            voice = e
        except Exception as e:  # as in the local batch: the item's clone fails with it, not cached
            return e
        self._voices[ref.key] = voice
        if len(self._voices) > VOICE_CACHE:
            self._voices.popitem(last=False)
        return voice

    def _embed(self, ref: Reference) -> np.ndarray:
        """Embed ``ref`` as ``Pipeline.embed`` embeds a path (a copy of its bytes in a private
        file keeping its suffix); errors name ``ref.name``, not the copy."""
        if ref.data is None:
            return _renamed(self.pipeline.embed, ref.path, ref.name)
        data = ref.data
        if not isinstance(data, bytes):  # an ObjectRef: fetched only now the voice is not cached
            import ray

            data = ray.get(data)
        path = Path(self._tmp.name) / f"{ref.key[:32]}{Path(ref.name).suffix}"
        path.write_bytes(data)
        try:
            return _renamed(self.pipeline.embed, str(path), ref.name)
        finally:
            path.unlink(missing_ok=True)


def _renamed(embed, path: str, name: str) -> np.ndarray:
    """``embed(path)``, its error (if any) naming ``name`` instead of ``path``."""
    try:
        return embed(path)
    except Sv2ttsError as e:
        if path == name:
            raise
        raise type(e)(str(e).replace(path, name)) from None


class _Records(logging.Handler):
    """Keeps the library's log records of the current group (level, logger, message)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[int, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.name, record.getMessage()))


@dataclass(frozen=True)
class _Voice:
    """A group's reference as ``clone_many`` sees it: a key into the group's voices."""

    key: str


class _KnownVoices:
    """The encoder ``clone_many`` uses on a worker: the group's voices, embedded beforehand."""

    def __init__(self) -> None:
        self.voices: dict[str, np.ndarray | Exception] = {}

    def embed(self, reference: _Voice, sample_rate=None, *, max_seconds=None) -> np.ndarray:
        voice = self.voices[reference.key]
        if isinstance(voice, Exception):
            raise type(voice)(*voice.args)
        return voice
