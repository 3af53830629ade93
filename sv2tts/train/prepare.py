"""A fine-tuning run's preprocessed data, cached in its output folder and reused on resume.

`prepare_data` runs RTVC's preprocessing (`preprocess_dataset`: trim, rescale, mel, the
min-duration and max-frames rules, then the utterance embeddings) into ``folder`` (RTVC's
SV2TTS/synthesizer layout). An utterance whose audio file or transcript changed since the
cache was written is preprocessed again; the others are reused. Before any embedding is
computed, bad audio (unreadable, silent) or a dataset where nothing is long enough is an
InputError naming the files; utterances RTVC drops (too short, too long) are only reported.
The report is written to ``folder/report.json``.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ..core.errors import InputError
from ..core.runtime import progress_bar
from .config import PreprocessConfig
from .data import MetadataRow
from .files import write_text
from .preprocess import (SILENT, UNREADABLE, DroppedUtterance, PreprocessReport, UtteranceSource,
                         embed_dataset, preprocess_dataset, write_report)
from .sources import list_files

log = logging.getLogger(__name__)

SOURCES_FILE = "sources.json"  # what each cached utterance was made from
REPORT_FILE = "report.json"


def _fingerprint(source: UtteranceSource) -> dict:
    stat = source.audio.stat() if source.audio.is_file() else None
    return {"audio": str(source.audio.resolve()), "size": stat.st_size if stat else None,
            "mtime_ns": stat.st_mtime_ns if stat else None, "text": source.text}


def _drop_stale(folder: Path, sources: Sequence[UtteranceSource]) -> int:
    """Delete the cached files of utterances whose source changed; record the new sources."""
    record = folder / SOURCES_FILE
    try:
        old = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
    except (OSError, ValueError):
        old = {}
    stale = 0
    for source in sources:
        if old.get(source.name) != _fingerprint(source):
            row = MetadataRow.for_name(source.name, 0, 0, source.text)
            for sub, name in (("audio", row.audio_file), ("mels", row.mel_file), ("embeds", row.embed_file)):
                path = folder / sub / name
                if path.exists():
                    path.unlink()
                    stale += 1
    write_text(record, json.dumps({s.name: _fingerprint(s) for s in sources}, indent=1, ensure_ascii=False))
    return stale


def _bad_audio_error(dropped: Sequence[DroppedUtterance]) -> InputError | None:
    unreadable = [d for d in dropped if d.reason == UNREADABLE]
    silent = [d for d in dropped if d.reason == SILENT]
    problems = []
    if unreadable:
        problems.append(f"unreadable audio: {list_files([d.audio for d in unreadable])} "
                        f"({unreadable[0].detail})")
    if silent:
        problems.append(f"silent audio (every sample zero): {list_files([d.audio for d in silent])}")
    return InputError("; ".join(problems) + ": fix or remove them") if problems else None


def prepare_data(sources: Sequence[UtteranceSource], folder: str | os.PathLike, *, encoder=None,
                 cfg: PreprocessConfig = PreprocessConfig(), progress: bool | None = None) -> PreprocessReport:
    """Preprocess ``sources`` into ``folder`` (reusing what a previous run cached) and embed them.

    encoder: an `sv2tts.Encoder` for the embeddings (None: the built-in one).
    progress: a tqdm bar on stderr (None: when stderr is a terminal).
    Returns the report (kept rows, dropped utterances with reasons); InputError when audio is
    unreadable or silent, or when no utterance is kept.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stale = _drop_stale(folder, sources)
    if stale:
        log.info("%s: %d cached files of changed utterances removed", folder, stale)
    bar = progress_bar(progress, len(sources), "preprocessing", unit="utt")
    try:
        report = preprocess_dataset(sources, folder, encoder=False, cfg=cfg, skip_existing=True,
                                    on_item=(lambda *_: bar.update()) if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    write_report(folder / REPORT_FILE, report)
    error = _bad_audio_error(report.dropped)
    if error is not None:
        raise error
    if not report.kept:
        details = list_files([f"{Path(d.audio).name} ({d.detail})" for d in report.dropped], 4)
        raise InputError(f"no utterance is usable: all {len(report.dropped)} were dropped ({details}); "
                         f"an utterance needs {cfg.utterance_min_duration:g} s of speech and at most "
                         f"{cfg.max_mel_frames * cfg.hop_size / cfg.sample_rate:g} s")
    if encoder is None:
        from ..encoder import Encoder

        encoder = Encoder.load()
    embed_dataset(folder, encoder, skip_existing=True)
    return report
