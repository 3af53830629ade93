"""RTVC's vocoder training steps (golden/train/vocoder): items (mu-law labels), the random
crops (numpy's generator replayed), logits, loss, gradients and the state after the steps.
Tolerances: the golden README, Training section 4."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from sv2tts.train import vocoder as V
from sv2tts.train.config import VocoderTrainConfig
from sv2tts.train.data import VocoderDataset, collate_vocoder


@pytest.fixture(scope="module")
def npz(train_golden):
    return np.load(train_golden / "vocoder" / "train_steps.npz")


@pytest.fixture(scope="module")
def cfg(train_golden) -> VocoderTrainConfig:
    hp = json.loads((train_golden / "vocoder" / "train_steps.json").read_text())["hparams"]
    cfg = VocoderTrainConfig(lr=hp["voc_lr"], seq_len=hp["voc_seq_len"], pad=hp["voc_pad"],
                             hop_length=hp["hop_length"], bits=hp["bits"], mu_law=hp["mu_law"],
                             mel_max_abs_value=hp["mel_max_abs_value"], preemphasis=hp["preemphasis"],
                             apply_preemphasis=hp["apply_preemphasis"])
    assert cfg.mel_win == json.loads((train_golden / "vocoder" / "train_steps.json").read_text())["mel_win"]
    return cfg


@pytest.fixture(scope="module")
def dataset(rtvc_syn_dir, cfg):
    return VocoderDataset(rtvc_syn_dir / "train.txt", rtvc_syn_dir / "mels", rtvc_syn_dir / "audio", cfg)


@pytest.fixture(scope="module")
def replay(train_golden, npz, dataset, cfg, steps_of):
    model, optimizer = V.open_for_training(train_golden / "vocoder" / "vocoder_small.pt", cfg=cfg)
    records = {}
    for k in steps_of(npz, "loss"):
        items = [dataset[int(i)] for i in npz[f"step{k}_indices"]]
        batch = collate_vocoder(items, np.random.RandomState(int(npz[f"step{k}_np_seed"])), cfg)
        grads = {}
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        result = V.train_step(model, optimizer, batch, keep_logits=True, inspect_gradients=lambda m: grads.update(
            {n: p.grad.detach().clone() for n, p in m.named_parameters() if p.grad is not None}))
        after = {n: p.detach().clone() for n, p in model.named_parameters()}
        records[k] = dict(batch=batch, result=result, grads=grads, before=before, after=after)
    return model, records, optimizer


def test_defaults_are_rtvcs(train_golden):
    hp = json.loads((train_golden / "vocoder" / "train_steps.json").read_text())["hparams"]
    d = VocoderTrainConfig()
    assert (d.batch_size, d.lr, d.seq_len, d.pad, d.hop_length, d.bits, d.mu_law, d.mel_max_abs_value,
            d.apply_preemphasis, d.preemphasis) == (
        hp["voc_batch_size"], hp["voc_lr"], hp["voc_seq_len"], hp["voc_pad"], hp["hop_length"], hp["bits"],
        hp["mu_law"], hp["mel_max_abs_value"], hp["apply_preemphasis"], hp["preemphasis"])


def test_items(dataset, npz):
    assert len(dataset) == len(npz["item_quant_len"])
    for i in range(len(dataset)):
        item = dataset[i]
        assert item.labels.dtype == np.int64 and len(item.labels) == int(npz["item_quant_len"][i])
        assert hashlib.sha256(item.labels.astype("<i8").tobytes()).hexdigest() == str(npz["item_quant_sha256"][i])
        assert item.mel.shape[1] == int(npz["item_mel_frames"][i])
    np.testing.assert_array_equal(dataset[0].labels[:len(npz["item0_quant_first1000"])], npz["item0_quant_first1000"])


def test_crops(replay, npz, dataset, cfg):
    _, records, _ = replay
    for k, rec in records.items():
        b = rec["batch"]
        frames = [dataset[int(i)].mel.shape[1] for i in npz[f"step{k}_indices"]]
        np.testing.assert_array_equal([t - 2 - (cfg.mel_win + 2 * cfg.pad) for t in frames], npz[f"step{k}_max_offsets"])
        np.testing.assert_array_equal(b.mel_offsets, npz[f"step{k}_mel_offsets"])
        np.testing.assert_array_equal((b.mel_offsets + cfg.pad) * cfg.hop_length, npz[f"step{k}_sig_offsets"])
        np.testing.assert_array_equal(b.x.numpy(), npz[f"step{k}_x"])
        np.testing.assert_array_equal(b.y.numpy(), npz[f"step{k}_y"])
        np.testing.assert_array_equal(b.mels.numpy(), npz[f"step{k}_mels"])


def test_logits_and_loss(replay, npz):
    _, records, _ = replay
    for k, rec in records.items():
        res = rec["result"]
        np.testing.assert_allclose(res.loss, float(npz[f"step{k}_loss"]), rtol=1e-5)
        np.testing.assert_allclose(res.logits[:, 0].numpy(), npz[f"step{k}_logits_first_timestep"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(res.logits[:, -1].numpy(), npz[f"step{k}_logits_last_timestep"], rtol=1e-4, atol=1e-5)
        if f"step{k}_logits_mean_over_classes" in npz.files:
            np.testing.assert_allclose(res.logits.mean(dim=2).numpy(), npz[f"step{k}_logits_mean_over_classes"],
                                       rtol=1e-4, atol=1e-5)


def test_gradients_and_updates(replay, npz, sampled, close_rel):
    _, records, _ = replay
    layout = sampled(npz)
    for k, rec in records.items():
        grads = rec["grads"]
        assert "step" not in grads  # the int step counter gets no gradient, hence no Adam state
        prefix = f"step{k}_grad__"
        stored = [key for key in npz.files if key.startswith(prefix)]
        assert stored
        for key in stored:
            close_rel(grads[key[len(prefix):]].numpy(), npz[key], 1e-4, key)
        norms = np.array([float(grads[n].norm()) if n in grads else 0.0 for n in layout])
        np.testing.assert_allclose(norms, npz[f"step{k}_grad_norms_per_param"], rtol=1e-4, atol=1e-12)
        for name, (pos, sl) in layout.items():
            if name in grads:
                close_rel(grads[name].flatten()[pos].numpy(), npz[f"step{k}_grad_sampled"][sl], 1e-4, name)
            got = rec["after"][name].flatten()[pos].numpy()
            np.testing.assert_allclose(got, npz[f"step{k}_param_sampled"][sl], rtol=0, atol=1e-5, err_msg=name)
        updates = np.array([float((rec["after"][n].double() - rec["before"][n].double()).norm()) for n in layout])
        np.testing.assert_allclose(updates, npz[f"step{k}_update_norms_per_param"], rtol=1e-3, atol=1e-9)


def test_state_after_steps(replay, npz, train_golden, tmp_path):
    model, _, optimizer = replay
    prefix = next(key for key in npz.files if key.startswith("state_after_")).split("__")[0] + "__"
    state = model.state_dict()
    stored = {key[len(prefix):]: npz[key] for key in npz.files if key.startswith(prefix)}
    assert sorted(stored) == sorted(state)
    for key, want in stored.items():
        got = state[key].numpy()
        assert got.dtype == want.dtype, key
        if np.issubdtype(want.dtype, np.integer):
            np.testing.assert_array_equal(got, want, err_msg=key)
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=key)
    # the file RTVC's model.load reads (layout in train_steps.json; the file itself is not stored)
    layout = json.loads((train_golden / "vocoder" / "train_steps.json").read_text())["checkpoint_after_steps"]
    ckpt = torch.load(V.save_vocoder(tmp_path / "vocoder.pt", model, optimizer), map_location="cpu",
                      weights_only=True)
    assert list(ckpt) == layout["top_level_keys"]
    assert {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
            for k, v in ckpt["model_state"].items()} == layout["model_state"]
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
              for g in ckpt["optimizer_state"]["param_groups"]]
    assert groups == layout["optimizer_param_groups"]
    assert len(ckpt["optimizer_state"]["state"]) == layout["n_param_states"]
    assert 0 not in ckpt["optimizer_state"]["state"]  # index 0 is the step counter
    reloaded, _ = V.load_wavernn(tmp_path / "vocoder.pt")
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in state.items())
