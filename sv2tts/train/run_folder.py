"""A fine-tuning run's output folder: which run it holds, resume or refuse, the metrics log.

The folder's ``finetune.json`` (`RunRecord`) names the model being trained and the checkpoint
the run started from (path, sha256, step); a later run into the same folder resumes it when it
trains the same model from the same start, and is refused otherwise (or when the folder holds
a checkpoint of no recorded run) unless ``overwrite`` is set, which clears the run's files.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.cache import sha256_file
from ..core.errors import InputError
from .files import write_text

log = logging.getLogger(__name__)

RUN_FILE = "finetune.json"
METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
CHECKPOINT_NAMES = ("synthesizer.pt", "vocoder.pt")  # what a run folder's checkpoint is called


@dataclass(frozen=True)
class RunRecord:
    """What a fine-tuning run is: model ("synthesizer" / "vocoder"), start checkpoint (path,
    sha256, step), the settings fixed at its start, and its validation utterances."""

    model: str
    start: str
    start_sha256: str
    start_step: int
    settings: dict[str, Any] = field(default_factory=dict)  # r, lr, seed, ... fixed for the run
    val_names: tuple[str, ...] = ()

    def to_json(self) -> str:
        d = asdict(self)
        d["val_names"] = list(self.val_names)
        return json.dumps(d, indent=1, ensure_ascii=False)

    @classmethod
    def read(cls, path: Path) -> "RunRecord":
        """The record in ``path``; InputError when it is not one."""
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(d["model"]), str(d["start"]), str(d["start_sha256"]), int(d["start_step"]),
                       dict(d.get("settings") or {}), tuple(d.get("val_names") or ()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}: not a readable fine-tuning record ({e}); use --overwrite to start "
                             f"a new run there") from None

    def with_(self, **changes) -> "RunRecord":
        return replace(self, **changes)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    return sha256_file(Path(path)).hexdigest()


@dataclass(frozen=True)
class RunFolder:
    """An output folder for fine-tuning ``model``; ``checkpoint`` is its latest checkpoint."""

    path: Path
    model: str

    @property
    def checkpoint(self) -> Path:
        return self.path / f"{self.model}.pt"

    @property
    def record_path(self) -> Path:
        return self.path / RUN_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES_DIR

    def existing(self) -> RunRecord | None:
        """The run recorded here, None when there is none; InputError when the folder holds a
        checkpoint that no run record explains."""
        if self.record_path.is_file():
            return RunRecord.read(self.record_path)
        foreign = [self.path / n for n in CHECKPOINT_NAMES if (self.path / n).exists()]
        if foreign:
            raise InputError(f"{self.path}: holds {foreign[0].name} from another run (no {RUN_FILE}); "
                             f"choose another output folder or use --overwrite to replace it")
        return None

    def check_same_run(self, record: RunRecord, start: Path | None, start_sha256: str | None) -> None:
        """InputError unless the recorded run trains this model from this start checkpoint."""
        if record.model != self.model:
            raise InputError(f"{self.path}: holds a {record.model} fine-tuning run, not a {self.model} one; "
                             f"choose another output folder or use --overwrite to replace it")
        if start_sha256 is not None and start_sha256 != record.start_sha256:
            raise InputError(f"{self.path}: holds a run started from a different {self.model} "
                             f"({record.start}), not {start}; choose another output folder or use "
                             f"--overwrite to replace it")

    def clear(self) -> None:
        """Remove a previous run's files (checkpoints, record, metrics, samples); the
        preprocessed data cache stays (it is checked against the sources on every run)."""
        for name in (*CHECKPOINT_NAMES, RUN_FILE, METRICS_FILE):
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.samples, ignore_errors=True)

    def write_record(self, record: RunRecord) -> None:
        write_text(self.record_path, record.to_json())


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line (step first), appended and flushed per line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def truncate_after(self, step: int) -> None:
        """Drop the lines of steps after ``step`` (a resumed run repeats them)."""
        if not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if int(json.loads(line)["step"]) <= step:
                    kept.append(line + "\n")
            except (ValueError, KeyError, TypeError):
                continue
        write_text(self.path, "".join(kept))

    def append(self, entry: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """Every entry, in order."""
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
