"""A fine-tuning dataset's utterances (audio file + transcript), from one of three layouts.

- a folder of audio files (.wav, .flac, .mp3, .ogg, .m4a; searched recursively), each with a
  same-named ``.txt`` transcript (or ``.normalized.txt``, as in LibriSpeech);
- a CSV (header row) or JSONL manifest with the fields ``audio`` and ``text`` (relative
  paths are relative to the manifest's folder);
- LJSpeech's ``metadata.csv`` (``id|text[|normalized text]``, audio in ``wavs/<id>.wav``),
  given as the file or as the folder holding it; the normalized text is used when present.

Every transcript is read (UTF-8) and checked before any audio is: missing transcripts,
transcripts without audio, unreadable, non-UTF-8 or empty transcripts are an InputError that
names the files. Transcripts are read as RTVC reads them (double quotes removed, surrounding
blanks stripped); line breaks inside a transcript become spaces (RTVC's train.txt has one
line per utterance).
"""
from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from ..core.errors import InputError
from ..core.manifests import jsonl_rows
from .preprocess import UtteranceSource, clean_transcript, transcript_path

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a")
MANIFEST_FIELDS = ("audio", "text")
MAX_LISTED = 8  # files named in one error message (then "and N more")


def list_files(paths: Sequence[object], max_listed: int = MAX_LISTED) -> str:
    """Comma-separated names, the first ``max_listed`` of them, then ``and N more``."""
    names = [str(p) for p in paths]
    shown = ", ".join(names[:max_listed])
    return shown + (f" and {len(names) - max_listed} more" if len(names) > max_listed else "")


def find_utterances(data: str | os.PathLike) -> list[UtteranceSource]:
    """The utterances of ``data`` (a folder, a manifest or an LJSpeech metadata.csv), in a
    stable order. InputError naming the files for every problem found in the transcripts."""
    data = Path(data)
    if data.is_dir():
        if (data / "metadata.csv").is_file() and (data / "wavs").is_dir():
            return _ljspeech(data / "metadata.csv")
        return _folder(data)
    if not data.is_file():
        raise InputError(f"{data}: no such folder or manifest")
    suffix = data.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _manifest(data, jsonl_rows(_read_text_file(data), data, "a JSON object with audio and text"))
    if suffix in (".csv", ".tsv", ".txt"):
        first = _read_text_file(data).splitlines()[:1]
        if first and "|" in first[0] and not set(MANIFEST_FIELDS) <= set(first[0].replace(" ", "").split(",")):
            return _ljspeech(data)
        return _manifest(data, _csv_rows(data))
    raise InputError(f"{data}: expected a folder, a .csv or .jsonl manifest, or LJSpeech's metadata.csv")


def _normalise(text: str) -> str:
    """RTVC's transcript cleaning, with line breaks inside the text turned into spaces."""
    return " ".join(clean_transcript(text).split())


def _read_text_file(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e})") from None


def _name(path: Path, root: Path) -> str:
    """An utterance name from the audio path relative to ``root`` (folders joined by '_')."""
    rel = path.relative_to(root).with_suffix("")
    return "_".join(rel.parts).replace("|", "_")


def _folder(root: Path) -> list[UtteranceSource]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    audio = [p for p in files if p.suffix.lower() in AUDIO_SUFFIXES]
    texts = [p for p in files if p.name.lower().endswith(".txt")]
    if not audio and not texts:
        raise InputError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) and no transcripts")
    if not texts:
        raise InputError(f"{root}: no transcripts: each audio file needs a same-named .txt file "
                         f"(e.g. {audio[0].with_suffix('.txt').name} for {audio[0].name})")
    stems = {p.with_suffix("") for p in audio}
    orphans = [p for p in texts
               if Path(str(p)[:-len(".normalized.txt")] if p.name.lower().endswith(".normalized.txt")
                       else p.with_suffix("")) not in stems]
    if orphans:
        raise InputError(f"{root}: transcripts without an audio file of the same name: {list_files(orphans)}")
    missing = [p for p in audio if transcript_path(p) is None]
    if missing:
        raise InputError(f"{root}: audio files without a transcript (<name>.txt): {list_files(missing)}")
    return _checked([(a, transcript_path(a), _name(a, root)) for a in audio], root)


def _checked(entries: list[tuple[Path, Path | str, str]], where: Path) -> list[UtteranceSource]:
    """Sources from (audio, transcript file or text, name) entries: every transcript read and
    checked, every problem gathered into one InputError."""
    bad_encoding, unreadable, empty, names = [], [], [], {}
    sources = []
    for audio, text, name in entries:
        if isinstance(text, Path):
            try:
                raw = text.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                bad_encoding.append(text)
                continue
            except OSError:
                unreadable.append(text)
                continue
            label: object = text
        else:
            raw, label = text, audio
        cleaned = _normalise(raw)
        if not cleaned:
            empty.append(label)
            continue
        if name in names:
            raise InputError(f"{where}: two utterances named {name!r} ({names[name]} and {audio})")
        names[name] = audio
        sources.append(UtteranceSource(audio, cleaned, name))
    problems = []
    if bad_encoding:
        problems.append(f"not UTF-8 (save them as UTF-8): {list_files(bad_encoding)}")
    if unreadable:
        problems.append(f"unreadable: {list_files(unreadable)}")
    if empty:
        problems.append(f"empty: {list_files(empty)}")
    if problems:
        raise InputError(f"{where}: transcripts " + "; ".join(problems))
    if not sources:
        raise InputError(f"{where}: no utterances")
    return sources


def _csv_rows(path: Path) -> list[tuple[int, dict]]:
    reader = csv.DictReader(_read_text_file(path).splitlines())
    missing = [f for f in MANIFEST_FIELDS if f not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (a CSV manifest needs a header "
                         f"row: audio,text)")
    return [(reader.line_num, row) for row in reader]


def _manifest(path: Path, rows: list[tuple[int, dict]]) -> list[UtteranceSource]:
    entries, missing_audio = [], []
    for n, row in rows:
        audio_field = str(row.get("audio") or "").strip()
        if not audio_field:
            raise InputError(f"{path}: line {n} has no audio")
        if not isinstance(row.get("text"), str):
            raise InputError(f"{path}: line {n} has no text")
        audio = path.parent / audio_field
        if not audio.is_file():
            missing_audio.append(audio)
        entries.append((audio, row["text"], _name(audio, path.parent) if audio.is_relative_to(path.parent)
                        else audio.stem))
    if missing_audio:
        raise InputError(f"{path}: audio files not found: {list_files(missing_audio)}")
    return _checked(entries, path)


def _ljspeech(path: Path) -> list[UtteranceSource]:
    entries, missing_audio = [], []
    for n, line in enumerate(_read_text_file(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) < 2 or not parts[0].strip():
            raise InputError(f"{path}: line {n} is not 'id|text[|normalized text]'")
        audio = path.parent / "wavs" / f"{parts[0].strip()}.wav"
        if not audio.is_file():
            missing_audio.append(audio)
        text = parts[2] if len(parts) > 2 and parts[2].strip() else parts[1]
        entries.append((audio, text, parts[0].strip().replace("|", "_")))
    if missing_audio:
        raise InputError(f"{path}: audio files not found: {list_files(missing_audio)}")
    return _checked(entries, path)
