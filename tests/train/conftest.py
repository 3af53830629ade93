"""Fixtures of the training tests: RTVC's training golden data (golden/train) and the
synthesizer folder RTVC's preprocessing wrote (rebuilt from preprocess.npz + preprocess.json).

Torch runs on one thread here, as the generator did (the numbers do not depend on it beyond
float rounding; it keeps the run time stable on a shared machine).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread(one_torch_thread):
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def train_golden(golden) -> Path:
    """golden/train; a failure under CI=true when it is missing, else a skip."""
    path = golden / "train"
    if not (path / "meta.json").is_file():
        msg = f"training golden data not found in {path}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def assert_close_rel(actual, expected, rel: float, what: str = "") -> None:
    """max |a - b| <= rel * max |b| (the golden README's per-tensor criterion)."""
    a, b = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    err, scale = float(np.abs(a - b).max(initial=0.0)), float(np.abs(b).max(initial=0.0))
    assert err <= rel * scale, f"{what}: max |diff| {err:.3g} > {rel:g} x max |golden| {scale:.3g}"


@pytest.fixture(scope="session")
def rtvc_syn_dir(train_golden, tmp_path_factory) -> Path:
    """RTVC's SV2TTS/synthesizer folder of the golden run: train.txt, audio/, mels/, embeds/
    holding RTVC's own arrays (so training tests start from RTVC's inputs exactly)."""
    from sv2tts.train.data import read_metadata
    from sv2tts.train.files import save_npy, write_text

    meta = json.loads((train_golden / "preprocess" / "preprocess.json").read_text())
    arrays = np.load(train_golden / "preprocess" / "preprocess.npz")
    folder = tmp_path_factory.mktemp("rtvc_syn_dir")
    write_text(folder / "train.txt", meta["train_txt"])
    rows = read_metadata(folder / "train.txt")
    assert rows
    for row in rows:
        save_npy(folder / "audio" / row.audio_file, arrays[f"{row.name}__wav"])
        save_npy(folder / "mels" / row.mel_file, arrays[f"{row.name}__mel"])
        save_npy(folder / "embeds" / row.embed_file, arrays[f"{row.name}__embed"])
    return folder


def step_numbers(npz, suffix: str) -> list[int]:
    """The k of every ``step{k}_<suffix>`` array, ascending."""
    ks = sorted(int(key[4:-len(suffix) - 1]) for key in npz.files
                if key.startswith("step") and key.endswith("_" + suffix) and key[4:-len(suffix) - 1].isdigit())
    assert ks, f"no step*_{suffix} arrays"
    return ks


def sampled_slices(npz):
    """Per parameter name: the flat positions its ``*_sampled`` values were taken at, and the
    slice of the concatenated ``*_sampled`` arrays that holds them."""
    names = [str(n) for n in npz["parameter_names"]]
    offsets, positions = npz["sampled_offsets"], npz["sampled_positions"]
    return {name: (positions[offsets[i]:offsets[i + 1]].astype(np.int64), slice(int(offsets[i]), int(offsets[i + 1])))
            for i, name in enumerate(names)}


@pytest.fixture(scope="session")
def close_rel():
    """`assert_close_rel` (tests/ is no package: helpers are handed out as fixtures)."""
    return assert_close_rel


@pytest.fixture(scope="session")
def steps_of():
    """`step_numbers`."""
    return step_numbers


@pytest.fixture(scope="session")
def sampled():
    """`sampled_slices`."""
    return sampled_slices
