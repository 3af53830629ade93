"""Synthesizer preprocessing against RTVC's (golden/train/preprocess): which utterances are
kept or dropped and why, train.txt, the saved wavs, mels and embeddings."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sv2tts import InputError
from sv2tts.train import preprocess as pp
from sv2tts.train.data import read_metadata

WAV_ATOL, MEL_ATOL, EMBED_ATOL = 1e-7, 1e-4, 2e-5  # golden README, "Training" section 1


@pytest.fixture(scope="module")
def meta(train_golden) -> dict:
    return json.loads((train_golden / "preprocess" / "preprocess.json").read_text())


@pytest.fixture(scope="module")
def dataset_root(train_golden, golden, meta, tmp_path_factory) -> Path:
    """dataset_in, plus the inputs not stored (size) rebuilt as the README says: the int16
    samples of their ../audio sources concatenated, then [start, start + length)."""
    root = tmp_path_factory.mktemp("dataset")
    shutil.copytree(train_golden / "preprocess" / "dataset_in", root, dirs_exist_ok=True)
    for item in meta["inputs"]:
        target = root / item["relpath"]
        if target.exists():
            continue
        pcm = np.concatenate([sf.read(golden / "audio" / src, dtype="int16")[0] for src in item["sources"]])
        pcm = pcm[item["start"]:item["start"] + item["length"]]
        assert hashlib.sha256(pcm.astype("<i2").tobytes()).hexdigest() == item["pcm_sha256"]
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, pcm, 16000, subtype="PCM_16")
        target.with_suffix(".txt").write_text(item["text_file_content"], encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def run(dataset_root, meta, tmp_path_factory):
    """Our preprocessing (audio + embeddings with the built-in encoder) of the golden inputs."""
    first = Path(meta["inputs"][0]["relpath"]).parts  # <datasets_name>/<subfolder>/...
    sources = pp.rtvc_dataset_sources(dataset_root, first[0], [first[1]])
    out = tmp_path_factory.mktemp("syn_dir")
    return pp.preprocess_dataset(sources, out), out


def test_defaults_are_rtvcs(meta):
    hp, cfg = meta["hparams"], pp.PreprocessConfig()
    assert (cfg.sample_rate, cfg.rescale, cfg.rescaling_max, cfg.trim_silence, cfg.utterance_min_duration,
            cfg.max_mel_frames, cfg.clip_mels_length, cfg.hop_size) == (
        hp["sample_rate"], hp["rescale"], hp["rescaling_max"], hp["trim_silence"], hp["utterance_min_duration"],
        hp["max_mel_frames"], hp["clip_mels_length"], hp["hop_size"])


def test_train_txt_identical(run, meta):
    report, out = run
    assert (out / "train.txt").read_text(encoding="utf-8") == meta["train_txt"]
    assert [row.line().split("|") for row in report.kept] == [k["metadata"] for k in meta["kept_in_train_txt_order"]]


def test_drop_decisions_and_reasons(run, meta):
    report, _ = run
    expected = {d["basename"]: d for d in meta["dropped"]}
    assert {d.name: d.reason for d in report.dropped} == {name: d["reason"] for name, d in expected.items()}
    for d in report.dropped:
        e = expected[d.name]
        assert (d.raw_samples, d.trimmed_samples) == (e["raw_len"], e["trimmed_len"])
        assert d.mel_frames == e.get("mel_frames")
    assert report.reused == 0
    assert "kept" in report.summary() and all(d["reason"] in report.summary() for d in meta["dropped"])


def test_saved_arrays(run, meta, train_golden):
    report, out = run
    arrays = np.load(train_golden / "preprocess" / "preprocess.npz")
    kept = {k["basename"]: k for k in meta["kept_in_train_txt_order"]}
    assert [r.name for r in report.kept] == list(kept)
    for row in report.kept:
        wav = np.load(out / "audio" / row.audio_file)
        mel = np.load(out / "mels" / row.mel_file)
        embed = np.load(out / "embeds" / row.embed_file)
        golden_wav = arrays[f"{row.name}__wav"]
        assert wav.dtype == np.float32 and len(wav) == len(golden_wav) == kept[row.name]["trimmed_len"]
        np.testing.assert_allclose(wav, golden_wav, rtol=0, atol=WAV_ATOL)
        assert mel.dtype == np.float32 and mel.shape == arrays[f"{row.name}__mel"].shape  # (T, 80)
        assert mel.shape[0] == kept[row.name]["mel_frames"]
        np.testing.assert_allclose(mel, arrays[f"{row.name}__mel"], rtol=0, atol=MEL_ATOL)
        assert embed.dtype == np.float32
        np.testing.assert_allclose(embed, arrays[f"{row.name}__embed"], rtol=0, atol=EMBED_ATOL)


def test_skip_existing_reuses_files(run, dataset_root, meta):
    report, out = run
    first = Path(meta["inputs"][0]["relpath"]).parts
    sources = pp.rtvc_dataset_sources(dataset_root, first[0], [first[1]])
    again = pp.preprocess_dataset(sources, out, skip_existing=True)
    assert again.reused == len(report.kept)
    assert (out / "train.txt").read_text(encoding="utf-8") == meta["train_txt"]
    assert [d.reason for d in again.dropped] == [d.reason for d in report.dropped]


def test_transcripts_quotes_and_encoding(tmp_path):
    (tmp_path / "a.txt").write_text('  She said "hi" twice.\n', encoding="utf-8")
    assert pp.read_transcript(tmp_path / "a.txt") == "She said hi twice."
    (tmp_path / "b.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(InputError, match="b.txt.*UTF-8"):
        pp.read_transcript(tmp_path / "b.txt")


def test_bad_utterances_are_dropped_with_reasons(tmp_path, example_clip):
    wav, rate = sf.read(example_clip, dtype="float32")
    sf.write(tmp_path / "ok.flac", wav, rate)
    sf.write(tmp_path / "short.flac", wav[:rate], rate)
    sf.write(tmp_path / "silent.flac", np.zeros(3 * rate, dtype=np.float32), rate)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really")
    sources = [pp.UtteranceSource(tmp_path / "ok.flac", "Hello there.", "ok"),
               pp.UtteranceSource(tmp_path / "ok.flac", "", "empty"),
               pp.UtteranceSource(tmp_path / "short.flac", "Short.", "short"),
               pp.UtteranceSource(tmp_path / "silent.flac", "Nothing.", "silent"),
               pp.UtteranceSource(tmp_path / "broken.wav", "Broken.", "broken")]
    report = pp.preprocess_dataset(sources, tmp_path / "out", encoder=False)
    assert [r.name for r in report.kept] == ["ok"]
    assert {d.name: d.reason for d in report.dropped} == {
        "empty": pp.EMPTY_TEXT, "short": pp.TOO_SHORT, "silent": pp.SILENT, "broken": pp.UNREADABLE}
    assert all(d.detail for d in report.dropped)
    assert [r.name for r in read_metadata(tmp_path / "out" / "train.txt")] == ["ok"]
    assert sorted(p.name for p in (tmp_path / "out" / "mels").iterdir()) == ["mel-ok.npy"]
    assert json.loads(report.to_json())["dropped"][0]["name"] == "empty"
