"""Batch cloning: many (reference, text, output) items through one loaded Pipeline."""
from __future__ import annotations

import csv
import errno
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .core.audio import check_output_path, write_audio
from .core.dsp import SAMPLE_RATE
from .core.errors import InputError, Sv2ttsError
from .core.manifests import jsonl_rows
from .core.runtime import progress_bar

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus", ".npy"}
COLUMNS = ("reference", "text", "output")
GROUP = 8  # items vocoded together by default (sv2tts batch --group)


@dataclass(frozen=True)
class Item:
    reference: Path
    text: str
    output: Path


def directory_items(folder: Path, text: str, output_dir: Path) -> list[Item]:
    """One item per audio file (or .npy voice) in ``folder``: output_dir/<stem>.wav.

    Other files are listed in a warning; two references that would write the same output
    (a.flac and a.mp3) are an InputError, before any work.
    """
    if Path(output_dir).resolve() == Path(folder).resolve():
        raise InputError(f"{output_dir}: write the outputs to another folder than the references "
                         f"(a later run would take them for references)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    refs = [p for p in files if p.suffix.lower() in AUDIO_SUFFIXES]
    ignored = [p.name for p in files if p not in refs]
    if ignored:
        log.warning("%s: ignored %d file(s) that are not audio: %s", folder, len(ignored), ", ".join(ignored[:10])
                    + (" ..." if len(ignored) > 10 else ""))
    if not refs:
        raise InputError(f"{folder}: no audio files found (looked for {', '.join(sorted(AUDIO_SUFFIXES))})")
    by_output: dict[str, list[str]] = {}
    for p in refs:
        by_output.setdefault(f"{p.stem}.wav", []).append(p.name)
    clashes = [f"{' and '.join(names)} -> {out}" for out, names in by_output.items() if len(names) > 1]
    if clashes:
        raise InputError(f"{folder}: several references would write the same output ({'; '.join(clashes)}): "
                         f"rename them or use a manifest")
    return [Item(p, text, output_dir / f"{p.stem}.wav") for p in refs]


def read_manifest(path: Path) -> list[Item]:
    """Items of a CSV (header row) or JSONL manifest with columns reference, text, output.

    Relative paths are taken relative to the manifest's folder.
    """
    if not path.is_file():
        raise InputError(f"{path}: manifest not found")
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: manifest is not UTF-8 text (byte {e.start})") from None
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = jsonl_rows(content, path)
    else:
        reader = csv.DictReader(content.splitlines())
        fields = reader.fieldnames or []
        missing = [c for c in COLUMNS if c not in fields]
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(missing)} "
                             f"(a CSV manifest needs a header: {','.join(COLUMNS)})")
        rows = []
        for row in reader:
            n = reader.line_num
            extra = row.get(None)
            if extra is not None:  # more cells than header columns
                raise InputError(f"{path}: line {n} has {len(fields) + len(extra)} columns, expected "
                                 f"{len(fields)}: quote texts that contain commas")
            rows.append((n, row))
    items = []
    for n, row in rows:
        missing = [c for c in COLUMNS if not str(row.get(c) or "").strip()]
        if missing:
            raise InputError(f"{path}: line {n} is missing {', '.join(missing)}")
        items.append(Item(path.parent / str(row["reference"]).strip(), str(row["text"]),
                          path.parent / str(row["output"]).strip()))
    if not items:
        raise InputError(f"{path}: manifest has no rows")
    return items


def run_batch(pipeline, items: list[Item], *, overwrite: bool = False, seed: int | None = None,
              max_frames: int = 2000, precision: str = "float32", progress: bool | None = None,
              on_failure: Callable[[Item, str], None] | None = None, group: int = GROUP) -> dict:
    """Clone every item; a failing item is recorded and the batch goes on.

    Items are cloned ``group`` at a time with ``Pipeline.clone_many`` (their vocoding shared:
    faster; each item's audio is the same as alone). Outputs that already exist are skipped
    unless ``overwrite`` (every output is written atomically, so an existing file is complete).
    Any per-item failure is that item's; the batch goes on. Returns a JSON-able report; on
    Ctrl-C or a full disk the report is still returned, the items not finished marked
    "interrupted", ``report["interrupted"]`` True and ``report["stopped"]`` saying why.
    """
    check_group(group)
    run = BatchRun(items, overwrite=overwrite, progress=progress, on_failure=on_failure)

    def clone(pending: list[int]) -> None:
        for first in range(0, len(pending), group):
            todo = [i for i in pending[first:first + group] if run.check_output(i)]
            jobs = [(items[i].reference, items[i].text, seed) for i in todo]
            for i, wav in zip(todo, clone_jobs(pipeline, jobs, precision=precision, max_frames=max_frames)):
                if not isinstance(wav, np.ndarray):
                    run.fail(i, error_message(wav))
                elif not run.save(i, functools.partial(write_audio, items[i].output, wav), audio_seconds(wav)):
                    return

    return run.execute(clone)


class BatchRun:
    """The bookkeeping of one batch, wherever its items are cloned (here or on a cluster):
    which items to run, each item's result, the progress bar, the stop reason and the report.

    Checks the items first (``check_items``); ``report()`` closes the progress bar.
    ``on_failure(item, message)`` is called for each failed item, ``on_item(item, entry)``
    for each item recorded (done, skipped or failed).
    """

    def __init__(self, items: list[Item], *, overwrite: bool = False, progress: bool | None = None,
                 on_failure: Callable[[Item, str], None] | None = None,
                 on_item: Callable[[Item, dict], None] | None = None) -> None:
        check_items(items)
        self.items = items
        self.overwrite = overwrite
        self.stopped: str | None = None  # why the batch stopped early (Ctrl-C, a full disk)
        self._results: dict[int, dict] = {}
        self._on_failure = on_failure
        self._on_item = on_item
        self._start = time.perf_counter()
        self._bar = progress_bar(progress, len(items), "cloning", unit="item")

    def pending(self) -> list[int]:
        """Indices of the items to clone; those whose output exists are recorded as skipped
        (unless ``overwrite``)."""
        todo = []
        for i, item in enumerate(self.items):
            if item.output.exists() and not self.overwrite:
                self.record(i, "skipped")
            else:
                todo.append(i)
        return todo

    def execute(self, clone: Callable[[list[int]], None]) -> dict:
        """Skip what exists, ``clone(pending)`` (unless nothing is pending: no models are loaded,
        no cluster is reached), and return the report; Ctrl-C stops the run and still gives it."""
        try:
            pending = self.pending()
            if pending:
                clone(pending)
        except KeyboardInterrupt:
            self.stop("interrupted")
        return self.report()

    def record(self, i: int, status: str, **extra) -> None:
        """Item ``i``'s result: "done" (with ``seconds``), "skipped" or "failed" (with ``error``)."""
        self._results[i] = entry = _entry(self.items[i], status, **extra)
        if status == "failed" and self._on_failure is not None:
            self._on_failure(self.items[i], extra["error"])
        if self._on_item is not None:
            self._on_item(self.items[i], entry)
        if self._bar is not None:
            self._bar.update(1)

    def fail(self, i: int, message: str) -> None:
        self.record(i, "failed", error=message)

    def check_output(self, i: int) -> bool:
        """False (and item ``i`` failed) when its output cannot be written (``check_output_path``)."""
        try:
            check_output_path(self.items[i].output)
            return True
        except Sv2ttsError as e:
            self.fail(i, str(e))
            return False

    def save(self, i: int, write: Callable[[], object], seconds: float) -> bool:
        """Run ``write`` (which writes item ``i``'s output) and record the item: done, or failed
        with the OSError's reason. False when the batch must stop (the disk is full)."""
        output = self.items[i].output
        try:
            write()
        except OSError as e:
            if e.errno == errno.ENOSPC:
                self.fail(i, f"{output}: disk full")
                self.stop("the disk is full")
                return False
            self.fail(i, f"{output}: {e.strerror or e}")
            return True
        self.record(i, "done", seconds=seconds)
        return True

    def stop(self, reason: str) -> None:
        """Stop early (the items not recorded are reported "interrupted")."""
        self.stopped = reason

    def done(self, i: int) -> bool:
        """Whether item ``i`` has a result."""
        return i in self._results

    def report(self) -> dict:
        """The JSON-able report (counts, stop reason, seconds, one entry per item in order)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        ordered = [self._results.get(i) or _entry(item, "interrupted") for i, item in enumerate(self.items)]
        counts = {s: sum(r["status"] == s for r in ordered) for s in ("done", "skipped", "failed", "interrupted")}
        return {"counts": counts, "interrupted": self.stopped is not None, "stopped": self.stopped,
                "seconds": round(time.perf_counter() - self._start, 3), "items": ordered}


def _entry(item: Item, status: str, **extra) -> dict:
    """An item's line in the report."""
    return {"reference": str(item.reference), "output": str(item.output), "status": status, **extra}


def check_group(group) -> int:
    """``group`` when it is an int >= 1, else InputError."""
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise InputError(f"group={group!r}: expected an int >= 1")
    return group


def audio_seconds(wav: np.ndarray) -> float:
    """The duration the report gives for an item's audio."""
    return round(len(wav) / SAMPLE_RATE, 3)


def error_message(error: BaseException) -> str:
    """An item's error as the report gives it: a library error's own message (unprefixed: the
    report names the item), anything else with its type."""
    if isinstance(error, Sv2ttsError):
        return str(error.__cause__ or error)
    return f"{type(error).__name__}: {error}"


def clone_jobs(pipeline, jobs: list[tuple], *, precision: str | None, max_frames: int) -> list:
    """Audio or the exception of each ``(reference, text, seed)`` job: ``clone_many`` for all;
    should they fail as a whole (a RuntimeError, memory), each job alone, so only the culprit
    fails."""
    try:
        return pipeline.clone_many(jobs, precision=precision, max_frames=max_frames, progress=False)
    except (Sv2ttsError, OSError, ValueError, RuntimeError, MemoryError) as e:
        if len(jobs) == 1:
            return [e]
    return [r for job in jobs for r in clone_jobs(pipeline, [job], precision=precision, max_frames=max_frames)]


def check_items(items: list[Item]) -> None:
    """Before any work: InputError when two items write the same output, an output is a
    folder, or an output would replace a reference of the batch."""
    outputs: dict[Path, Item] = {}
    references = {i.reference.resolve() for i in items}
    for item in items:
        out = item.output.resolve()
        if out in outputs:
            raise InputError(f"{item.output}: two items write this output ({outputs[out].reference} and "
                             f"{item.reference}); give each its own")
        if out.is_dir():
            raise InputError(f"{item.output}: the output is a folder")
        if out in references:
            raise InputError(f"{item.output}: the output would replace a reference of this batch")
        outputs[out] = item
