"""The generation engines (engines.py): the C engine against the torch engine, packing, threads,
fallback. The torch engine computes, in float32, what each precision's C kernel computes, so the
two must agree far more closely than a reduced precision agrees with float32.

The C engine tests are skipped where the extension is not built or the CPU lacks a kernel's
instructions; the torch engine then runs everywhere and is tested in test_fast.py too.
"""
import logging

import numpy as np
import pytest
import torch

from sv2tts.core.native import native_module
from sv2tts.vocoder.config import VocoderConfig
from sv2tts.vocoder.engines import CHUNK, NativeEngine, TorchEngine, select_engine
from sv2tts.vocoder.model import WaveRNN

# widths that are not multiples of 16 exercise the padding
CFG = VocoderConfig(rnn_dims=40, fc_dims=36, compute_dims=16, res_out_dims=16, res_blocks=1)
FOLDS = 7  # more than the kernels' 6 folds per pass
STEPS = CHUNK + 30  # two chunks: the state carries across
PRECISIONS = ["float32", "bfloat16", "int8"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = WaveRNN(CFG).eval()
    with torch.no_grad():
        m.fc3.weight.mul_(8)  # a peaked output distribution, so a wrong state shows in the labels
    return m


@pytest.fixture(scope="module")
def feats():
    g = torch.Generator().manual_seed(1)
    mels = torch.randn(FOLDS, STEPS, CFG.num_mels, generator=g) * 0.5
    aux = torch.randn(FOLDS, STEPS, CFG.res_out_dims, generator=g) * 0.5
    return mels, aux


@pytest.fixture(scope="module")
def labels():
    return torch.randint(0, CFG.n_classes, (FOLDS, STEPS), generator=torch.Generator().manual_seed(2))


def native(model, precision):
    lib, why = native_module(precision)
    if lib is None:
        pytest.skip(f"no C {precision} kernel here ({why})")
    return NativeEngine(model, precision, lib)


def rms(x):
    return float(x.pow(2).mean().sqrt())


@pytest.mark.parametrize("precision", PRECISIONS)
def test_native_logits_match_the_torch_engine(model, feats, labels, precision):
    """Teacher forcing: the C kernels compute what the torch engine computes for the precision."""
    mels, aux = feats
    exact = TorchEngine(model, "float32").replay(mels, aux, labels)
    same = TorchEngine(model, precision).replay(mels, aux, labels)
    got = native(model, precision).replay(mels, aux, labels)
    assert got.shape == exact.shape == (STEPS, FOLDS, CFG.n_classes)
    spread = float(exact.std())
    if precision == "float32":
        assert float((got - exact).abs().max()) < 1e-5 * spread
        return
    # reduced precision moves the logits (int8: ~0.8% rms, bf16: ~0.3% of their spread); the
    # C kernel and the torch engine differ only where float rounding flips a rounded input (the
    # first steps agree to 2e-7; flips then spread through the recurrent state: int8 ~7e-4)
    assert rms(same - exact) > 5 * rms(got - same)
    assert rms(got[0] - same[0]) < 1e-6 * spread
    assert rms(got - same) < 1.5e-3 * spread
    assert float((same - exact).abs().max()) < 0.06 * spread and rms(same - exact) < 0.012 * spread


@pytest.mark.parametrize("precision", PRECISIONS)
def test_native_samples_by_inverse_cdf_of_its_own_logits(model, feats, precision):
    """Labels = first class whose cumulative probability exceeds u (torch's searchsorted rule),
    and replaying them reproduces the logits: the state carries correctly from step to step."""
    engine = native(model, precision)
    mels, aux = feats
    steps = 64
    rows = engine._rows(mels, aux, 0, steps)
    u = torch.rand(steps, FOLDS, 1, generator=torch.Generator().manual_seed(3))
    labels = torch.empty(steps, FOLDS, dtype=torch.long)
    logits = torch.empty(steps, FOLDS, CFG.n_classes)
    engine._run(engine._state(FOLDS), rows, labels, u=u, logits=logits)
    c = torch.cumsum(torch.softmax(logits.double(), dim=2), dim=2)
    expected = torch.searchsorted(c, u.double() * c[..., -1:], right=True)[..., 0].clamp(max=CFG.n_classes - 1)
    # a uniform within float rounding of a class boundary may fall either side of it
    near = (c - u.double() * c[..., -1:]).abs().amin(dim=2) < 1e-5
    assert torch.equal(labels[~near], expected[~near])
    assert int((labels != expected).sum()) <= int(near.sum())
    assert len(torch.unique(labels)) > 20  # it really sampled
    replayed = engine.replay(mels[:, :steps], aux[:, :steps], labels.t())
    assert torch.allclose(replayed, logits, atol=1e-5)


def test_native_float32_draws_the_torch_engines_labels(model, feats):
    mels, aux = feats
    a = native(model, "float32").generate(mels, aux, torch.Generator().manual_seed(5))
    b = TorchEngine(model, "float32").generate(mels, aux, torch.Generator().manual_seed(5))
    assert float((a == b).double().mean()) > 0.99  # until a uniform falls on a class boundary


@pytest.mark.parametrize("precision", PRECISIONS)
def test_same_labels_on_any_thread_count(model, feats, precision):
    """Each output row is computed by one thread with the same arithmetic: thread count free."""
    engine = native(model, precision)
    mels, aux = feats
    runs = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            runs.append(engine.generate(mels, aux, torch.Generator().manual_seed(4)))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])


def test_native_checks_its_buffers(model, feats):
    """Wrong sizes are a ValueError from the extension, never a crash."""
    engine = native(model, "float32")
    mels, aux = feats
    rows = engine._rows(mels, aux, 0, 8)
    x, h1, h2 = engine._state(FOLDS)
    labels = torch.empty(8, FOLDS, dtype=torch.long)
    with pytest.raises(ValueError, match="h1"):
        engine._run([x, h1[:-1], h2], rows, labels, u=torch.rand(8, FOLDS, 1))
    with pytest.raises(ValueError, match="u"):
        engine._run([x, h1, h2], rows, labels, u=torch.rand(7, FOLDS, 1))
    with pytest.raises(ValueError, match="forced"):
        engine._run([x, h1, h2], rows, labels, forced=torch.full((8, FOLDS), CFG.n_classes))


def test_native_leaves_floating_point_state_alone(model, feats):
    """No flush-to-zero or other FP mode leaks into the process (no -ffast-math)."""
    native(model, "int8").generate(*feats, torch.Generator().manual_seed(0))
    assert np.float32(1e-38) * np.float32(1e-3) != 0  # a subnormal result survives
    assert torch.tensor(1e-38) * 1e-3 != 0


def test_engine_choice_is_logged_and_can_be_disabled(model, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="sv2tts.vocoder.engines"):
        monkeypatch.setenv("SV2TTS_NATIVE", "0")
        engine = select_engine(model, "int8", torch.device("cpu"))
    assert isinstance(engine, TorchEngine) and engine.precision == "int8"
    assert "int8: torch engine (disabled by SV2TTS_NATIVE)" in caplog.text
    labels = engine.generate(torch.zeros(2, 10, CFG.num_mels), torch.zeros(2, 10, CFG.res_out_dims),
                             torch.Generator().manual_seed(0))
    assert labels.shape == (2, 10) and labels.dtype == torch.long
    monkeypatch.delenv("SV2TTS_NATIVE")
    assert select_engine(model, "reference", torch.device("cpu")).name == "reference"
