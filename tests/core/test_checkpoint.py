"""core.checkpoint: the converted (model-only, memory-mapped) copies of checkpoints."""
import json
import os

import pytest
import torch

from sv2tts.core import checkpoint
from sv2tts.core.checkpoint import load_state_dict


def _write_checkpoint(path, seed: int):
    g = torch.Generator().manual_seed(seed)
    state = {"a.weight": torch.randn(256, 128, generator=g), "a.bias": torch.randn(256, generator=g),
             "step": torch.tensor([1000 + seed]), "half": torch.randn(8, generator=g).to(torch.bfloat16)}
    optimizer = {"state": {0: {"exp_avg": torch.randn(256, 128, generator=g),
                               "exp_avg_sq": torch.randn(256, 128, generator=g)}}, "param_groups": [{"lr": 1e-3}]}
    torch.save({"model_state": state, "optimizer_state": optimizer}, path)
    return state


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SV2TTS_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "converted"


@pytest.fixture
def reads(monkeypatch):
    """Counts the reads of source checkpoints (the converted copies are read otherwise)."""
    count = []
    real = checkpoint._read
    monkeypatch.setattr(checkpoint, "_read", lambda *a: count.append(a[0]) or real(*a))
    return count


def _assert_identical(state, expected):
    assert set(state) == set(expected)
    for k, v in expected.items():
        assert state[k].dtype == v.dtype and state[k].shape == v.shape
        assert torch.equal(state[k].view(torch.uint8) if v.dim() else state[k], v.view(torch.uint8) if v.dim() else v)


def test_first_load_converts_and_later_loads_map_the_copy(tmp_path, home, reads):
    src = tmp_path / "model.pt"
    expected = _write_checkpoint(src, 0)
    _assert_identical(load_state_dict(src, "test", convert=True), expected)
    assert reads == [src]
    (record,) = home.glob("*.json")
    info = json.loads(record.read_text())
    weights = home / info["weights"]
    assert info["source"] == str(src.resolve()) and info["identity"]["size"] == src.stat().st_size
    assert weights.stat().st_size < src.stat().st_size / 2  # model_state only, no optimizer state
    again = load_state_dict(src, "test", convert=True)
    assert reads == [src]  # not read again
    _assert_identical(again, expected)
    saved = torch.load(weights, weights_only=True)
    assert saved["model_state"].keys() == expected.keys() and saved["source_sha256"] == info["sha256"]
    assert load_state_dict(src, "test").keys() == expected.keys()  # convert=False reads the source
    assert reads == [src, src]


def test_a_changed_source_is_converted_again(tmp_path, home, reads):
    """Same size, new bytes, mtime set back: the copy of the old bytes is not used, and removed."""
    src = tmp_path / "model.pt"
    _write_checkpoint(src, 0)
    load_state_dict(src, "test", convert=True)
    st = src.stat()
    (old,) = home.glob("*.pt")
    data = bytearray(src.read_bytes())
    new = _write_checkpoint(tmp_path / "other.pt", 1)
    other = (tmp_path / "other.pt").read_bytes()
    assert len(other) == len(data)
    src.write_bytes(other)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    _assert_identical(load_state_dict(src, "test", convert=True), new)
    assert len(reads) == 2
    assert not old.exists() and len(list(home.glob("*.pt"))) == 1


def test_a_touched_or_copied_source_with_the_same_bytes_keeps_its_copy(tmp_path, home, reads):
    src = tmp_path / "model.pt"
    expected = _write_checkpoint(src, 0)
    load_state_dict(src, "test", convert=True)
    os.utime(src, ns=(0, 0))
    _assert_identical(load_state_dict(src, "test", convert=True), expected)
    assert len(reads) == 1  # rehashed, same sha256: the copy is used and the record updated
    load_state_dict(src, "test", convert=True)
    assert len(reads) == 1


def test_a_damaged_copy_or_record_is_replaced(tmp_path, home, reads):
    src = tmp_path / "model.pt"
    expected = _write_checkpoint(src, 0)
    load_state_dict(src, "test", convert=True)
    (weights,) = home.glob("*.pt")
    weights.write_bytes(weights.read_bytes()[:100])
    _assert_identical(load_state_dict(src, "test", convert=True), expected)
    (record,) = home.glob("*.json")
    record.write_text("{not json")
    _assert_identical(load_state_dict(src, "test", convert=True), expected)
    assert len(reads) == 3
    _assert_identical(load_state_dict(src, "test", convert=True), expected)
    assert len(reads) == 3


def test_a_copy_made_from_another_file_is_not_loaded(tmp_path, home, reads):
    """Another checkpoint's converted copy put in place of this one's is refused and replaced."""
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    expected_a = _write_checkpoint(a, 0)
    _write_checkpoint(b, 1)
    load_state_dict(a, "test", convert=True)
    load_state_dict(b, "test", convert=True)
    record_a = json.loads(next(r for r in home.glob("*.json") if json.loads(r.read_text())["source"] == str(a.resolve())).read_text())
    record_b = json.loads(next(r for r in home.glob("*.json") if json.loads(r.read_text())["source"] == str(b.resolve())).read_text())
    (home / record_a["weights"]).write_bytes((home / record_b["weights"]).read_bytes())
    _assert_identical(load_state_dict(a, "test", convert=True), expected_a)
    assert reads == [a, b, a]


def test_an_unwritable_cache_only_costs_the_conversion(tmp_path, monkeypatch, reads):
    (tmp_path / "home").write_text("a file where the cache folder should be")
    monkeypatch.setenv("SV2TTS_HOME", str(tmp_path / "home"))
    src = tmp_path / "model.pt"
    expected = _write_checkpoint(src, 0)
    _assert_identical(load_state_dict(src, "test", convert=True), expected)
    _assert_identical(load_state_dict(src, "test", convert=True), expected)
    assert len(reads) == 2


def test_models_load_through_the_copy(model_files, home):
    import numpy as np

    import sv2tts

    first = sv2tts.Synthesizer.load(model_files["synthesizer"])
    assert len(list(home.glob("*.pt"))) == 1
    second = sv2tts.Synthesizer.load(model_files["synthesizer"])
    voice = np.full(256, 1 / 16, dtype=np.float32)
    assert np.array_equal(first.synthesize("Hello.", voice, seed=3), second.synthesize("Hello.", voice, seed=3))
