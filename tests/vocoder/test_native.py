"""The C int8 loop (sv2tts/vocoder/int8_loop.c): same step, same sampling rule, any thread count.

Skipped where it cannot be built (no C compiler or no AVX-512 VNNI); the TorchScript int8 loop
then runs and is tested in test_fast.py.
"""
import logging

import pytest
import torch

from sv2tts.vocoder import native
from sv2tts.vocoder.config import VocoderConfig
from sv2tts.vocoder.fast import CHUNK, FastGenerator
from sv2tts.vocoder.model import WaveRNN

# widths that are not multiples of 16 (rows) or 4 (columns) exercise the padding
CFG = VocoderConfig(rnn_dims=40, fc_dims=36, compute_dims=16, res_out_dims=16, res_blocks=1)
FOLDS = 7  # more than the kernel's 6 folds per pass
STEPS = CHUNK + 30


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
def gen(model):
    g = FastGenerator(model, "int8")
    if g.native is None:
        pytest.skip("the C int8 loop cannot be built here (see the log of sv2tts.vocoder.native)")
    return g


def test_pack_layout_and_scales():
    w = torch.randn(20, 6)
    packed, scale, wsum = native.pack(w)
    assert packed.shape == (2, 4, 16, 4) and packed.dtype == torch.uint8  # rows -> 32, cols -> 16
    assert torch.equal(scale[20:], torch.zeros(12))
    q = packed.permute(0, 2, 1, 3).reshape(32, 16).to(torch.int16) - 128
    assert torch.equal(q[20:], torch.zeros(12, 16, dtype=torch.int16))
    assert torch.equal(q[:, 6:], torch.zeros(32, 10, dtype=torch.int16))
    assert q.abs().max() == 127
    assert torch.equal(wsum, q.sum(dim=1).float())
    assert torch.allclose(q[:20, :6] * scale[:20, None], w, atol=float(scale.max()) / 2 + 1e-7)


def test_teacher_forced_logits_match_float32(gen, model, feats):
    """Same labels fed back: the int8 logits stay within int8 rounding of the float32 ones."""
    mels, aux = feats
    labels = torch.randint(0, CFG.n_classes, (FOLDS, STEPS), generator=torch.Generator().manual_seed(2))
    exact = FastGenerator(model, "float32").replay(mels, aux, labels)
    approx = gen.replay(mels, aux, labels)
    assert approx.shape == exact.shape == (STEPS, FOLDS, CFG.n_classes)
    err = (approx - exact).abs()
    # measured: max 3.5% / rms 0.6% of the logits' spread (TorchScript int8 loop: 4.1% / 0.65%)
    assert float(err.max()) < 0.06 * float(exact.std())
    assert float(err.pow(2).mean().sqrt()) < 0.012 * float(exact.std())


def test_samples_by_inverse_cdf_of_its_own_logits(gen, feats):
    """Labels = first class whose cumulative probability exceeds u (torch's searchsorted rule),
    and replaying them reproduces the logits: the state carries correctly step to step."""
    mels, aux = feats
    steps = 64
    pre = gen._precompute(mels, aux, 0, steps)
    u = torch.rand(steps, FOLDS, 1, generator=torch.Generator().manual_seed(3))
    state = [torch.zeros(FOLDS, 1), torch.zeros(FOLDS, CFG.rnn_dims), torch.zeros(FOLDS, CFG.rnn_dims)]
    labels = torch.empty(steps, FOLDS, dtype=torch.long)
    logits = torch.empty(steps, FOLDS, CFG.n_classes)
    gen.native.run(*state, pre, labels, u=u, logits=logits)
    c = torch.cumsum(torch.softmax(logits.double(), dim=2), dim=2)
    expected = torch.searchsorted(c, u.double() * c[..., -1:], right=True)[..., 0].clamp(max=CFG.n_classes - 1)
    # a uniform within float rounding of a class boundary may fall either side of it
    near = (c - u.double() * c[..., -1:]).abs().amin(dim=2) < 1e-5
    assert torch.equal(labels[~near], expected[~near])
    assert int((labels != expected).sum()) <= int(near.sum())
    replayed = gen.replay(mels[:, :steps], aux[:, :steps], labels.t())
    assert torch.allclose(replayed, logits, atol=1e-5)


def test_same_labels_on_any_thread_count(gen, feats):
    """Each output row is computed by one thread with the same arithmetic: thread count free."""
    mels, aux = feats
    pre = gen._precompute(mels, aux, 0, CHUNK)
    u = torch.rand(CHUNK, FOLDS, 1, generator=torch.Generator().manual_seed(4))
    runs = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            labels = torch.empty(CHUNK, FOLDS, dtype=torch.long)
            state = [torch.zeros(FOLDS, 1), torch.zeros(FOLDS, CFG.rnn_dims), torch.zeros(FOLDS, CFG.rnn_dims)]
            gen.native.run(*state, pre, labels, u=u)
            runs.append((labels, *state))
    finally:
        torch.set_num_threads(before)
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other))
    assert len(torch.unique(runs[0][0])) > 20  # it really sampled


def test_disabled_or_unbuildable_falls_back(monkeypatch, tmp_path, caplog, model):
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.setattr(native, "_lib", None)
    monkeypatch.setenv("SV2TTS_NATIVE", "0")
    assert native.load() is None
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.delenv("SV2TTS_NATIVE")
    monkeypatch.setenv("SV2TTS_HOME", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a compiler that always fails
    with caplog.at_level(logging.INFO, logger="sv2tts.vocoder.native"):
        assert native.load() is None
    assert "unavailable" in caplog.text
    assert not list((tmp_path / "build").glob("*"))  # nothing half-written left behind
    g = FastGenerator(model, "int8")
    assert g.native is None
    labels = g.generate(torch.zeros(2, 10, CFG.num_mels), torch.zeros(2, 10, CFG.res_out_dims),
                        torch.Generator().manual_seed(0))
    assert labels.shape == (2, 10)
