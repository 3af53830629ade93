"""A callable class for ``ray.data.Dataset.map_batches``: rows of (reference, text, seed) in,
encoded audio out, through the same worker code as ``sv2tts batch --ray``.

    ds = ray.data.from_items([{"reference": wav_bytes, "text": "Hello.", "seed": 0}, ...])
    ds = ds.map_batches(sv2tts.CloneBatches, fn_constructor_kwargs={"synthesizer": path, "vocoder": path},
                        batch_size=8, compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1)
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..batch import GROUP, check_group
from ..core.audio import OUTPUT_FORMATS
from ..core.errors import InputError
from ..pipeline import MAX_TEXT_CHARS
from .references import References
from .worker import CloneWorker, Job, Reference


class CloneBatches:
    """Clone each row of a batch: columns ``reference`` (an audio file's bytes, or a path every
    worker can read; a saved voice ``.npy`` path too), ``text``, optional ``seed`` (int or
    None) and ``reference_name`` (names a bytes reference in errors; its suffix is the file's).

    Returns the batch's columns plus ``audio`` (the WAV or FLAC file's bytes, ``b""`` when the
    row failed), ``seconds`` and ``error`` (``""`` when the row succeeded): one bad row does
    not stop the others. Each row's audio is what ``sv2tts.clone`` gives it alone. Models
    load once per actor; ``threads`` sets torch's threads (Ray gives its workers one).
    """

    def __init__(self, encoder=None, synthesizer=None, vocoder=None, *, precision: str = "float32",
                 max_frames: int = 2000, audio_format: str = "wav", device: str = "cpu",
                 max_text_chars: int | None = MAX_TEXT_CHARS, threads: int | None = None, group: int = GROUP) -> None:
        suffix = f".{str(audio_format).lower()}"
        if suffix not in OUTPUT_FORMATS:
            raise InputError(f"audio_format={audio_format!r}: expected wav or flac")
        self._suffix, self._group = suffix, check_group(group)
        self._options = {"precision": precision, "max_frames": max_frames}
        self._worker = CloneWorker(encoder, synthesizer, vocoder, device=device, max_text_chars=max_text_chars,
                                   threads=threads)
        if self._worker.error is not None:
            raise InputError(self._worker.error)

    def __call__(self, batch: Mapping) -> dict[str, np.ndarray]:
        if "reference" not in batch or "text" not in batch:
            raise InputError(f"a batch needs the columns reference and text, got {', '.join(batch) or 'none'}")
        n = len(batch["text"])
        seeds = batch["seed"] if "seed" in batch else [None] * n
        names = batch["reference_name"] if "reference_name" in batch else [None] * n
        paths = References([], shared=True, put=None)
        jobs, refs = [], {}
        for i, (reference, text, seed, name) in enumerate(zip(batch["reference"], batch["text"], seeds, names)):
            ref = _bytes_reference(bytes(reference), name) if isinstance(reference, (bytes, bytearray, np.bytes_)) \
                else paths.get(Path(str(reference)))
            refs[ref.key] = ref
            jobs.append(Job(i, ref.key, str(text), _seed(seed), f"row{i}{self._suffix}"))
        outcomes = []
        for first in range(0, n, self._group):
            chunk = jobs[first:first + self._group]
            outcomes += self._worker.clone(chunk, {j.reference: refs[j.reference] for j in chunk},
                                           **self._options).outcomes
        out = {k: np.asarray(v) for k, v in batch.items()}
        out["audio"] = np.array([o.audio for o in outcomes], dtype=object)
        out["seconds"] = np.array([o.seconds for o in outcomes], dtype=np.float64)
        out["error"] = np.array([o.error or "" for o in outcomes], dtype=object)
        return out


def _bytes_reference(data: bytes, name) -> Reference:
    name = str(name) if name is not None else "reference"
    suffix = Path(name).suffix.lower()
    return Reference(key=hashlib.sha256(data).hexdigest() + suffix, name=name, data=data)


def _seed(seed) -> int | None:
    """A row's seed: None (or a missing value in a numeric column) stays None."""
    if seed is None or (isinstance(seed, float) and np.isnan(seed)):
        return None
    return int(seed)
