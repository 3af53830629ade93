"""What the synthesizer and vocoder fine-tuning runs share before training starts: the output
folder's decision (new run, resume, refuse), the start checkpoint, the preprocessed data and
the validation split."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import CheckpointError, InputError
from ..core.runtime import check_seed
from .data import MetadataRow
from .preprocess import PreprocessReport
from .prepare import prepare_data
from .run_folder import MetricsLog, RunFolder, RunRecord, file_sha256
from .sources import find_utterances

log = logging.getLogger(__name__)

DATA_DIR = "data"  # the preprocessed data cache inside the output folder


@dataclass(frozen=True)
class RunStart:
    """Where a run starts: ``record`` of the run being resumed (None: a new run), the start
    checkpoint (path, sha256) and the file to load (the run's checkpoint when resuming)."""

    folder: RunFolder
    record: RunRecord | None
    start: Path
    start_sha256: str
    load_from: Path

    @property
    def resuming(self) -> bool:
        return self.record is not None


def open_run(out_dir: str | os.PathLike, model: str, start: str | os.PathLike | None, *,
             overwrite: bool = False, resume: bool | None = None) -> RunStart:
    """Decide what a run into ``out_dir`` does. start: the checkpoint to fine-tune (None: the
    recorded run's when resuming, else the default model, downloaded when missing).
    resume: None resumes when the folder holds this run's checkpoint; True requires it.
    InputError when the folder holds another run (unless ``overwrite``)."""
    folder = RunFolder(Path(out_dir), model)
    if folder.path.exists() and not folder.path.is_dir():
        raise InputError(f"{folder.path}: exists and is not a folder")
    if overwrite and resume:
        raise InputError("--resume and --overwrite contradict each other: choose one")
    start_path = Path(start) if start is not None else None
    if start_path is not None and not start_path.is_file():
        raise CheckpointError(f"{start_path}: {model} checkpoint not found")
    record = None if overwrite else folder.existing()
    if record is not None:
        sha = file_sha256(start_path) if start_path is not None else None
        folder.check_same_run(record, start_path, sha)
        if folder.checkpoint.is_file():
            return RunStart(folder, record, Path(record.start), record.start_sha256, folder.checkpoint)
    if resume:
        raise InputError(f"{folder.path}: nothing to resume (no {folder.checkpoint.name} of a {model} run)")
    if start_path is None:
        from .. import models

        start_path = models.ensure_model(model)
    return RunStart(folder, None, start_path.resolve(), file_sha256(start_path), start_path)


def prepare(data: str | os.PathLike, folder: RunFolder, *, encoder=None,
            progress: bool | None = None) -> PreprocessReport:
    """DATA's utterances, checked, preprocessed and embedded into the folder's data cache."""
    return prepare_data(find_utterances(data), folder.path / DATA_DIR, encoder=encoder, progress=progress)


def split_validation(rows: list[MetadataRow], fraction: float, seed: int,
                     recorded: tuple[str, ...] | None = None) -> tuple[list[MetadataRow], list[MetadataRow]]:
    """(training rows, validation rows). recorded: the names a resumed run held out (kept as
    long as they are still in the data); else ``round(fraction * n)`` rows drawn with ``seed``
    (at least one when fraction > 0 and there are two or more rows), never all of them."""
    if recorded is not None:
        held = set(recorded)
    else:
        n_val = int(round(fraction * len(rows)))
        if fraction > 0 and len(rows) >= 2:
            n_val = max(n_val, 1)
        n_val = min(n_val, len(rows) - 1)
        order = np.random.RandomState(check_seed(seed)).permutation(len(rows))
        held = {rows[i].name for i in order[:n_val]}
    train = [r for r in rows if r.name not in held]
    val = [r for r in rows if r.name in held]
    if not train:
        raise InputError("every utterance is held out for validation: lower --val-fraction")
    return train, val


def begin_run(run_start: RunStart, rows: list[MetadataRow], val_fraction: float, seed: int, start_step: int,
              step: int, settings: dict) -> tuple[RunRecord, list[MetadataRow], list[MetadataRow]]:
    """Split ``rows`` (`split_validation`; a resumed run keeps its held-out names), make the
    folder ready (a resumed run's metrics after ``step`` dropped, a new run's files cleared) and
    write the run's record. Returns (record, training rows, validation rows)."""
    folder = run_start.folder
    recorded = run_start.record.val_names if run_start.record is not None else None
    train_rows, val_rows = split_validation(rows, val_fraction, seed, recorded)
    record = RunRecord(folder.model, str(run_start.start), run_start.start_sha256, start_step, settings,
                       tuple(r.name for r in val_rows))
    if run_start.resuming:
        MetricsLog(folder.metrics_path).truncate_after(step)
    else:
        folder.clear()
    folder.write_record(record)
    return record, train_rows, val_rows


def epoch_batch(n_items: int, batch_size: int, seed: int, k: int) -> list[int]:
    """The dataset indices of a run's ``k``-th batch (k = 0, 1, ...): epochs of shuffled
    batches (`epoch_batches`, the last one smaller), epoch e shuffled by a generator seeded
    from (seed, e), so a resumed run picks the batches the uninterrupted one would have."""
    import torch

    from ..core.runtime import derive_seed
    from .data import epoch_batches

    per_epoch = -(-n_items // batch_size)
    epoch, pos = divmod(k, per_epoch)
    generator = torch.Generator().manual_seed(derive_seed(seed, epoch))
    return epoch_batches(n_items, batch_size, generator)[pos]
