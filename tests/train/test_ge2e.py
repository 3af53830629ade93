"""RTVC's GE2E encoder step (golden/train/encoder): batch sampling replayed, embeddings,
similarity matrix, loss, EER, gradients before and after the gradient ops, Adam updates.
Tolerances: the golden README, Training section 5."""
from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from sv2tts.encoder import Encoder
from sv2tts.train import ge2e
from sv2tts.train.config import EncoderTrainConfig

PRETRAINED_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"


@pytest.fixture(scope="module")
def npz(train_golden):
    return np.load(train_golden / "encoder" / "ge2e_step.npz")


@pytest.fixture(scope="module")
def info(train_golden):
    return json.loads((train_golden / "encoder" / "ge2e_step.json").read_text())


@pytest.fixture(scope="module")
def batch(golden, npz, info):
    """RTVC's SpeakerBatch of one utterance per speaker, replayed from the recorded seeds."""
    mels = np.load(golden / "encoder" / "encoder_audio.npz")
    speakers = [[mels[f"{clip}__mel"]] for clip in info["speaker_clips"]]
    n_speakers, n_utts = npz["partial_ranges"].shape[:2]
    assert len(speakers) == n_speakers
    cfg = EncoderTrainConfig(speakers_per_batch=n_speakers, utterances_per_speaker=n_utts,
                             partial_frames=info["batch_shape"][1], lr=info["learning_rate_init"])
    sampler = ge2e.SpeakerSampler(speakers, random.Random(int(npz["py_random_seed"])),
                                  np.random.RandomState(int(npz["np_random_seed"])), cfg)
    frames, ranges = sampler.batch()
    return frames, ranges, cfg


def run_step(net, optimizer, frames, cfg, n_speakers):
    grads_raw = {}
    result = ge2e.train_step(net, optimizer, torch.from_numpy(frames), n_speakers, cfg=cfg, keep_outputs=True,
                             inspect_gradients=lambda m: grads_raw.update(
                                 {n: p.grad.detach().clone() for n, p in m.named_parameters()}))
    grads = {n: p.grad.detach().clone() for n, p in net.named_parameters()}
    return result, grads_raw, grads


@pytest.fixture(scope="module")
def fresh(batch, npz):
    """The step with a new Adam (encoder/train.py from scratch) on the built-in weights."""
    frames, _, cfg = batch
    net = Encoder.load().net.cpu()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    result, grads_raw, grads = run_step(net, ge2e.make_optimizer(net, cfg), frames, cfg, npz["partial_ranges"].shape[0])
    after = {n: p.detach().clone() for n, p in net.named_parameters()}
    return result, grads_raw, grads, before, after


def test_batch_replayed(batch, npz, info):
    frames, ranges, _ = batch
    np.testing.assert_array_equal(ranges, npz["partial_ranges"])
    assert frames.shape == tuple(info["batch_shape"])
    assert hashlib.sha256(frames.tobytes()).hexdigest() == str(npz["frames_sha256"])


def test_forward_loss_eer(fresh, npz):
    result = fresh[0]
    np.testing.assert_allclose(result.embeds.numpy(), npz["embeds"], rtol=0, atol=2e-5)
    np.testing.assert_allclose(result.sim.numpy(), npz["sim_matrix"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(result.loss, float(npz["loss"]), rtol=1e-4)
    np.testing.assert_allclose(result.eer, float(npz["eer"]), rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.grad_norm, float(npz["grad_total_norm_in_clip"]), rtol=1e-4)
    np.testing.assert_allclose(min(1.0, 3.0 / (result.grad_norm + 1e-6)), float(npz["clip_coef"]), rtol=1e-4)


def _check_grad(name, got, want, close_rel):
    if name == "similarity_bias":  # mathematically 0: float noise, compared absolutely
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
    else:
        close_rel(got, want, 1e-4, name)


def test_gradients(fresh, npz, sampled, close_rel):
    _, grads_raw, grads, _, _ = fresh
    layout = sampled(npz)
    assert list(grads) == list(layout)
    for stage, recorded in (("grad_raw", grads_raw), ("grad", grads)):
        stored = [k for k in npz.files if k.startswith(f"{stage}__")]
        assert stored
        for key in stored:
            name = key.split("__", 1)[1]
            _check_grad(name, recorded[name].numpy(), npz[key], close_rel)
        norms = np.array([float(recorded[n].norm()) for n in layout])
        want = npz[f"{stage}_norms_per_param"]
        keep = [i for i, n in enumerate(layout) if n != "similarity_bias"]
        np.testing.assert_allclose(norms[keep], want[keep], rtol=1e-4)
        for name, (pos, sl) in layout.items():
            _check_grad(name, recorded[name].flatten()[pos].numpy(), npz[f"{stage}_sampled"][sl], close_rel)


def _check_params(after, npz, layout, which, atol, pct=None):
    """Parameters after the step: the stored full tensors and the sampled values."""
    full = [k for k in npz.files if k.startswith(f"param_after_{which}__")]
    assert full
    for key in full:
        np.testing.assert_allclose(after[key.split("__", 1)[1]].numpy(), npz[key], rtol=0, atol=atol, err_msg=key)
    values = np.concatenate([after[n].flatten()[pos].numpy() for n, (pos, _) in layout.items()])
    diff = np.abs(values - npz[f"param_after_{which}_sampled"])
    assert diff.max() <= atol
    if pct is not None:
        assert np.percentile(diff, 99.9) < pct


def test_fresh_adam_step(fresh, npz, sampled):
    _, _, _, before, after = fresh
    layout = sampled(npz)
    _check_params(after, npz, layout, "fresh_adam", atol=1e-4, pct=1e-5)
    updates = np.array([float((after[n].double() - before[n].double()).norm()) for n in layout])
    keep = [i for i, n in enumerate(layout) if n != "similarity_bias"]  # its update is rounding noise
    np.testing.assert_allclose(updates[keep], npz["update_norms_per_param_fresh_adam"][keep], rtol=2e-2)


def _pretrained_with_optimizer() -> Path | None:
    """resemblyzer's original pretrained.pt (with its Adam state), from $RESEMBLYZER_WEIGHTS."""
    path = os.environ.get("RESEMBLYZER_WEIGHTS")
    if not path or not Path(path).is_file():
        return None
    return Path(path) if hashlib.sha256(Path(path).read_bytes()).hexdigest() == PRETRAINED_SHA256 else None


def test_resumed_adam_step(batch, npz, info, sampled):
    """encoder/train.py resuming from pretrained.pt: its Adam moments and step continue. The
    built-in weights carry no optimizer state, so this needs $RESEMBLYZER_WEIGHTS."""
    path = _pretrained_with_optimizer()
    if path is None:
        pytest.skip("set RESEMBLYZER_WEIGHTS to resemblyzer 0.1.4's pretrained.pt for the resumed-Adam step")
    frames, _, cfg = batch
    net = Encoder.load().net.cpu()
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(ckpt["model_state"])
    optimizer = ge2e.make_optimizer(net, cfg)
    optimizer.load_state_dict(ckpt["optimizer_state"])
    optimizer.param_groups[0]["lr"] = cfg.lr
    run_step(net, optimizer, frames, cfg, npz["partial_ranges"].shape[0])
    after = {n: p.detach().clone() for n, p in net.named_parameters()}
    _check_params(after, npz, sampled(npz), "resumed_adam", atol=1e-5)
    assert float(optimizer.state_dict()["state"][0]["step"]) == info["resumed_adam_state_after_step"]["step"]


def test_eer_matches_sklearn_recipe():
    """Our EER = brentq(1 - x - interp1d(fpr, tpr)(x)) on sklearn's ROC, ties included."""
    metrics = pytest.importorskip("sklearn.metrics")
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq

    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(100):
        sim = np.round(rng.normal(size=(4, 5, 4)), 1).astype(np.float32)  # coarse: many ties
        truth = np.repeat(np.eye(4), 5, axis=0)
        fpr, tpr, _ = metrics.roc_curve(truth.ravel(), sim.reshape(20, 4).ravel())
        with np.errstate(divide="ignore", invalid="ignore"):
            try:
                want = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
            except ValueError:  # a vertical ROC step at 0 makes interp1d NaN there
                continue
        assert ge2e.equal_error_rate(sim) == pytest.approx(want, abs=1e-9)
        checked += 1
    assert checked > 50


def test_random_cycler_gives_every_item_before_repeating():
    cycler = ge2e.RandomCycler(list("abc"), random.Random(0))
    draws = cycler.sample(2) + cycler.sample(1)
    assert sorted(draws) == ["a", "b", "c"]
    assert sorted(cycler.sample(3)) == ["a", "b", "c"]
