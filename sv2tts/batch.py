"""Batch cloning: many (reference, text, output) items through one loaded Pipeline."""
from __future__ import annotations

import csv
import errno
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from .core.audio import check_output_path, write_audio
from .core.dsp import SAMPLE_RATE
from .core.errors import InputError, Sv2ttsError
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
        rows = []
        for n, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}: line {n} is not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}: line {n} is not a JSON object")
            rows.append((n, row))
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
              on_failure=None, group: int = GROUP) -> dict:
    """Clone every item; a failing item is recorded and the batch goes on.

    Items are cloned ``group`` at a time with ``Pipeline.clone_many`` (their vocoding shared:
    faster; each item's audio is the same as alone). Outputs that already exist are skipped
    unless ``overwrite`` (every output is written atomically, so an existing file is complete).
    Any per-item failure is that item's; the batch goes on. Returns a JSON-able report; on
    Ctrl-C or a full disk the report is still returned, the items not finished marked
    "interrupted", ``report["interrupted"]`` True and ``report["stopped"]`` saying why.
    """
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise InputError(f"group={group!r}: expected an int >= 1")
    check_items(items)
    start = time.perf_counter()
    results: dict[int, dict] = {}
    stopped = None  # why the batch stopped early (Ctrl-C, a full disk)
    bar = progress_bar(progress, len(items), "cloning", unit="item")

    def record(i: int, status: str, **extra) -> None:
        results[i] = _entry(items[i], status, **extra)
        if status == "failed" and on_failure is not None:
            on_failure(items[i], extra["error"])
        if bar is not None:
            bar.update(1)

    try:
        pending = []
        for i, item in enumerate(items):
            if item.output.exists() and not overwrite:
                record(i, "skipped")
            else:
                pending.append(i)
        for first in range(0, len(pending), group):
            todo = []
            for i in pending[first:first + group]:
                try:
                    check_output_path(items[i].output)
                    todo.append(i)
                except Sv2ttsError as e:
                    record(i, "failed", error=str(e))
            wavs = _clone_group(pipeline, [items[i] for i in todo], seed, precision, max_frames)
            for i, wav in zip(todo, wavs):
                if isinstance(wav, Sv2ttsError):
                    record(i, "failed", error=str(wav.__cause__ or wav))  # the report names the item
                    continue
                if isinstance(wav, BaseException):
                    record(i, "failed", error=f"{type(wav).__name__}: {wav}")
                    continue
                try:
                    write_audio(items[i].output, wav)
                    record(i, "done", seconds=round(len(wav) / SAMPLE_RATE, 3))
                except OSError as e:
                    if e.errno == errno.ENOSPC:
                        record(i, "failed", error=f"{items[i].output}: disk full")
                        stopped = "the disk is full"
                        break
                    record(i, "failed", error=f"{items[i].output}: {e.strerror or e}")
            if stopped:
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        if bar is not None:
            bar.close()
    ordered = [results.get(i) or _entry(item, "interrupted") for i, item in enumerate(items)]
    counts = {s: sum(r["status"] == s for r in ordered) for s in ("done", "skipped", "failed", "interrupted")}
    return {"counts": counts, "interrupted": stopped is not None, "stopped": stopped,
            "seconds": round(time.perf_counter() - start, 3), "items": ordered}


def _entry(item: Item, status: str, **extra) -> dict:
    """An item's line in the report."""
    return {"reference": str(item.reference), "output": str(item.output), "status": status, **extra}


def _clone_group(pipeline, items: list[Item], seed, precision, max_frames) -> list:
    """Audio or the exception of each item: ``clone_many`` for the group; should the group fail
    as a whole (a RuntimeError, memory), each item alone, so only the culprit fails."""
    jobs = [(item.reference, item.text, seed) for item in items]
    try:
        return pipeline.clone_many(jobs, precision=precision, max_frames=max_frames, progress=False)
    except (Sv2ttsError, OSError, ValueError, RuntimeError, MemoryError) as e:
        if len(items) == 1:
            return [e]
    return [r for item in items for r in _clone_group(pipeline, [item], seed, precision, max_frames)]


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
