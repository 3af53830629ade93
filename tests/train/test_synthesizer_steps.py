"""RTVC's synthesizer training steps (golden/train/synthesizer), replayed: the loader's
shuffles, the forwards' dropout and zoneout masks (a generator seeded as RTVC's global one),
outputs, losses, gradients, Adam updates and the checkpoint written after the last step.
Tolerances: the golden README's "How to compare" (Training, section 3)."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

import sv2tts
from sv2tts.synthesizer.config import SynthesizerConfig
from sv2tts.train import synthesizer as S
from sv2tts.train.config import SynthesizerTrainConfig
from sv2tts.train.data import SynthesizerDataset, collate_synthesizer, epoch_order



@pytest.fixture(scope="module")
def npz(train_golden):
    return np.load(train_golden / "synthesizer" / "train_steps.npz")


@pytest.fixture(scope="module")
def info(train_golden):
    return json.loads((train_golden / "synthesizer" / "train_steps.json").read_text())


@pytest.fixture(scope="module")
def replay(train_golden, rtvc_syn_dir, npz, info, steps_of, tmp_path_factory):
    """Run the recorded steps as RTVC's train() did; record what the golden file holds."""
    dataset = SynthesizerDataset.from_folder(rtvc_syn_dir)
    start = (train_golden / info["start_checkpoint"]).resolve()  # a path relative to train/
    assert hashlib.sha256(start.read_bytes()).hexdigest() == info["start_checkpoint_sha256"]
    (stage,) = [tuple(s) for s in info["tts_schedule_used"]]
    r, lr, max_step, batch_size = int(stage[0]), float(stage[1]), int(stage[2]), int(stage[3])
    # RTVC seeds the global generator, builds its Tacotron (the init draws from it), loads the
    # file; each epoch's DataLoader then draws its shuffle from the global generator.
    torch.manual_seed(int(npz["loader_torch_seed"]))
    state = torch.load(start, map_location="cpu", weights_only=True)["model_state"]
    S.new_tacotron(SynthesizerConfig.from_state_dict(state))
    model, ckpt = S.load_tacotron(start)
    optimizer = S.make_optimizer(model)
    S.load_optimizer_state(optimizer, ckpt, start)
    assert S.schedule_stage(S.model_step(model), [stage]) == stage
    S.apply_stage(model, optimizer, stage)
    loader_generator = torch.default_generator
    steps = steps_of(npz, "loss")
    records, pending = {}, []
    for k in steps:
        if not pending:  # a new epoch
            order = epoch_order(len(dataset), loader_generator)
            pending = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        indices = pending.pop(0)
        batch = collate_synthesizer([dataset[i] for i in indices], r)
        generator = torch.Generator().manual_seed(int(npz[f"step{k}_torch_seed"]))
        grads = {}
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        result = S.train_step(model, optimizer, batch, generator=generator, keep_outputs=True,
                              inspect_gradients=lambda m: grads.update(
                                  {n: p.grad.detach().clone() for n, p in m.named_parameters()}))
        after = {n: p.detach().clone() for n, p in model.named_parameters()}
        records[k] = dict(indices=indices, result=result, grads=grads, before=before, after=after,
                          batch=batch, decoder_r=model.r, step=S.model_step(model))
        loader_generator = generator  # RTVC's loader continues from the forward's global state
    assert S.model_step(model) == max_step
    path = tmp_path_factory.mktemp("ckpt") / "synthesizer.pt"
    S.save_synthesizer(path, model, optimizer)
    return records, path, lr


def _tolerances(k: int, first: int) -> dict:
    if k == first:
        return dict(out=dict(rtol=1e-4, atol=1e-5), attn=dict(rtol=0, atol=1e-6), loss=1e-5, grad=1e-4, update=1e-3)
    return dict(out=dict(rtol=1e-3, atol=1e-4), attn=dict(rtol=0, atol=1e-4), loss=1e-3, grad=2e-2, update=2e-2)


def test_defaults_are_rtvcs(info):
    cfg = SynthesizerTrainConfig()
    assert [list(stage) for stage in cfg.schedule] == info["tts_schedule_rtvc"]
    assert cfg.clip_grad_norm == info["tts_clip_grad_norm"]
    assert SynthesizerConfig().dropout == info["tts_dropout"] and SynthesizerConfig().zoneout == info["zoneout_p"]
    groups = S.make_optimizer(S.new_tacotron(SynthesizerConfig(embed_dims=8, encoder_dims=8, decoder_dims=8,
                                                               postnet_dims=8, lstm_dims=8))).param_groups
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in groups[0].items() if k not in ("params", "lr")} == \
        {k: v for k, v in info["optimizer_param_groups_at_step"][0].items() if k != "lr"}


def test_loader_order_replayed(replay, npz):
    records, _, _ = replay
    for k, rec in records.items():
        assert rec["indices"] == npz[f"step{k}_indices"].tolist(), f"step {k}"


def test_masks_are_the_generators_draws(replay, npz):
    """The masks of each forward = consecutive float64 uniforms < q from the step's seed, in
    RTVC's order (encoder pre-net; then per decoder step pre-net x 2, zoneout x 2)."""
    records, _, _ = replay
    for k, rec in records.items():
        enc, dec, zo = (npz[f"step{k}_mask_{n}"] for n in ("encoder_prenet", "decoder_prenet", "zoneout"))
        g = torch.Generator().manual_seed(int(npz[f"step{k}_torch_seed"]))

        def draw(shape, q):
            return torch.empty(shape).bernoulli_(q, generator=g).numpy().astype(np.uint8)

        np.testing.assert_array_equal(np.stack([draw(enc.shape[1:], 0.5) for _ in range(enc.shape[0])]), enc)
        for t in range(dec.shape[0]):
            np.testing.assert_array_equal(np.stack([draw(dec.shape[2:], 0.5) for _ in range(2)]), dec[t])
            np.testing.assert_array_equal(np.stack([draw(zo.shape[2:], 0.1) for _ in range(2)]), zo[t])
        assert dec.shape[0] == rec["batch"].mels.shape[-1] // rec["decoder_r"]


def test_outputs(replay, npz):
    records, _, _ = replay
    first = min(records)
    for k, rec in records.items():
        tol = _tolerances(k, first)
        out = rec["result"].outputs
        np.testing.assert_allclose(out.stop.numpy(), npz[f"step{k}_stop_pred"], **tol["out"])
        if f"step{k}_m1_hat" in npz.files:
            np.testing.assert_allclose(out.m1.numpy(), npz[f"step{k}_m1_hat"], **tol["out"])
            np.testing.assert_allclose(out.m2.numpy(), npz[f"step{k}_m2_hat"], **tol["out"])
            np.testing.assert_allclose(out.attention.numpy(), npz[f"step{k}_attention"], **tol["attn"])
        else:
            for name, full in (("m1_hat", out.m1), ("m2_hat", out.m2)):
                np.testing.assert_allclose(full[..., :4].numpy(), npz[f"step{k}_{name}_first4"], **tol["out"])
                np.testing.assert_allclose(full[..., -4:].numpy(), npz[f"step{k}_{name}_last4"], **tol["out"])
                np.testing.assert_allclose(float(full.double().sum()), float(npz[f"step{k}_{name}_sum"]),
                                           rtol=tol["loss"], atol=tol["out"]["atol"] * full.numel() ** 0.5)
            np.testing.assert_allclose(out.attention[:, :4].numpy(), npz[f"step{k}_attention_first4"], **tol["attn"])
        assert rec["decoder_r"] == int(npz[f"step{k}_decoder_r"])
        assert rec["step"] == int(npz[f"step{k}_model_step_buffer"])


def test_losses_and_grad_norm(replay, npz):
    records, _, _ = replay
    first = min(records)
    for k, rec in records.items():
        rtol = _tolerances(k, first)["loss"]
        res = rec["result"]
        got = dict(mse_m1=res.mse_m1, l1_m1=res.l1_m1, m1_loss=res.mse_m1 + res.l1_m1, m2_loss=res.m2_loss,
                   stop_loss=res.stop_loss, loss=res.loss, grad_norm=res.grad_norm,
                   clip_coef=min(1.0, 1.0 / (res.grad_norm + 1e-6)))
        for name, value in got.items():
            np.testing.assert_allclose(value, float(npz[f"step{k}_{name}"]), rtol=rtol, err_msg=f"step {k} {name}")


def test_gradients(replay, npz, close_rel):
    records, _, _ = replay
    first = min(records)
    names = [str(n) for n in npz["parameter_names"]]
    for k, rec in records.items():
        rel = _tolerances(k, first)["grad"]
        grads = rec["grads"]
        assert list(grads) == names and all(g is not None for g in grads.values())
        prefix = f"step{k}_grad__"
        stored = [key for key in npz.files if key.startswith(prefix)]
        assert stored
        for key in stored:
            close_rel(grads[key[len(prefix):]].numpy(), npz[key], rel, key)
        coef = min(1.0, 1.0 / (rec["result"].grad_norm + 1e-6))
        prefix = f"step{k}_grad_clipped__"
        for key in (key for key in npz.files if key.startswith(prefix)):
            close_rel(grads[key[len(prefix):]].numpy() * coef, npz[key], rel, key)
        embedding = grads["encoder.embedding.weight"].numpy()
        ids = npz[f"step{k}_grad_embedding_row_ids"]
        close_rel(embedding[ids], npz[f"step{k}_grad_embedding_rows"], rel, f"step {k} embedding rows")
        assert not np.delete(embedding, ids, axis=0).any()  # ids absent from the batch: no gradient
        assert 0 in ids  # the padding row trains (no padding_idx)
        norms = np.array([float(grads[n].norm()) for n in names])
        np.testing.assert_allclose(norms, npz[f"step{k}_grad_norms_per_param"], rtol=rel)


def test_sampled_gradients_and_parameters(replay, npz, sampled, close_rel):
    records, _, _ = replay
    first = min(records)
    layout = sampled(npz)
    for k, rec in records.items():
        tol = _tolerances(k, first)
        grads, after, before = rec["grads"], rec["after"], rec["before"]
        params = np.concatenate([after[n].flatten()[pos].numpy() for n, (pos, _) in layout.items()])
        diff = np.abs(params - npz[f"step{k}_param_sampled"])
        assert diff.max() <= 3e-4 and np.percentile(diff, 99.9) < 3e-5, f"step {k}: {diff.max():.3g}"
        for name, (pos, sl) in layout.items():
            close_rel(grads[name].flatten()[pos].numpy(), npz[f"step{k}_grad_sampled"][sl], tol["grad"],
                      f"step {k} {name} sampled gradient")
        updates = np.array([float((after[n] - before[n]).norm()) for n in layout])
        np.testing.assert_allclose(updates, npz[f"step{k}_update_norms_per_param"], rtol=tol["update"])


def test_checkpoint_after_steps(replay, train_golden, info):
    _, path, lr = replay
    ours = torch.load(path, map_location="cpu", weights_only=True)
    ref = torch.load(train_golden / "synthesizer" / info["checkpoint_after_steps"]["file"],
                     map_location="cpu", weights_only=True)
    assert list(ours) == list(ref) == info["checkpoint_after_steps"]["top_level_keys"]
    ms, rs = ours["model_state"], ref["model_state"]
    assert list(ms) == list(rs)
    params = []
    for key, want in rs.items():
        got = ms[key]
        assert got.shape == want.shape and got.dtype == want.dtype, key
        if not want.is_floating_point() or key == "stop_threshold":
            assert torch.equal(got, want), key
        elif "running_" in key:
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-5, err_msg=key)
        else:
            params.append((got - want).abs().flatten())
    diff = torch.cat(params).numpy()
    assert diff.max() <= 3e-4 and np.percentile(diff, 99.9) < 3e-5
    # Adam: same groups, a state per parameter, step counts exact, moments per tensor
    og, rg = ours["optimizer_state"]["param_groups"], ref["optimizer_state"]["param_groups"]
    assert og == rg and og[0]["lr"] == lr
    ost, rst = ours["optimizer_state"]["state"], ref["optimizer_state"]["state"]
    assert sorted(ost) == sorted(rst)
    worst = {"exp_avg": [], "exp_avg_sq": []}
    for i, want in rst.items():
        assert ost[i]["step"].dtype == want["step"].dtype and torch.equal(ost[i]["step"], want["step"])
        for m in worst:
            b = want[m].double()
            err = float((ost[i][m].double() - b).abs().max()) / max(float(b.abs().max()), 1e-30)
            worst[m].append(err)
    for m, errs in worst.items():
        assert max(errs) <= 2e-2 and float(np.median(errs)) <= 2e-3, (m, max(errs), float(np.median(errs)))


def test_checkpoint_loads_for_inference(replay):
    _, path, _ = replay
    synthesizer = sv2tts.Synthesizer.load(path)
    model, _ = S.load_tacotron(path)
    assert synthesizer.r == model.r
    for key, value in model.state_dict().items():
        assert torch.equal(synthesizer.model.state_dict()[key], value), key
