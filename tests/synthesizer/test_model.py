"""Tacotron against RTVC's golden outputs (small checkpoint) and the full-size manifest."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sv2tts.synthesizer import Synthesizer, SynthesizerConfig
from sv2tts.synthesizer.inference import FastTacotron
from sv2tts.synthesizer.model import Tacotron
from sv2tts.synthesizer.reference import synthesize_spectrograms_rtvc

NET = dict(rtol=1e-4, atol=1e-5)  # golden README: mel, postnet, encoder_seq, stop
ATTN = dict(rtol=0, atol=1e-6)  # attention


def _small_model(golden) -> Tacotron:
    sd = torch.load(golden / "synthesizer" / "synthesizer_small.pt", weights_only=True)
    sd = sd["model_state"]
    model = Tacotron(SynthesizerConfig.from_state_dict(sd))
    model.load_state_dict(sd, strict=True)
    return model


@pytest.fixture(scope="module")
def small(golden):
    return _small_model(golden)


@pytest.fixture(scope="module")
def gen(golden):
    return np.load(golden / "synthesizer" / "tacotron_generate.npz")


def t(a):
    return torch.from_numpy(np.asarray(a))


def test_small_config_read_off_shapes(golden, small):
    cfg = small.cfg
    hp = json.loads((golden / "synthesizer" / "small_hparams.json").read_text())
    assert (cfg.embed_dims, cfg.encoder_dims, cfg.decoder_dims, cfg.postnet_dims,
            cfg.lstm_dims) == tuple(v["small"] for v in hp["changed_hparams"].values())
    assert cfg.r == hp["reduction_factor_r"] == 2
    assert (cfg.encoder_K, cfg.postnet_K, cfg.num_highways, cfg.speaker_embedding_size,
            cfg.n_mels, cfg.max_r) == (5, 5, 4, 256, 80, 20)
    assert sum(p.numel() for p in small.parameters()) == hp["n_parameters"]


@torch.inference_mode()
def test_teacher_forced(golden, small):
    d = np.load(golden / "synthesizer" / "tacotron_forward.npz")
    chars, spk = t(d["tf_chars"]), t(d["tf_speaker_embeds"])
    enc = small.encoder(chars, spk)
    np.testing.assert_allclose(enc.numpy(), d["tf_encoder_seq"], **NET)
    np.testing.assert_allclose(small.encoder_proj(enc).numpy(), d["tf_encoder_seq_proj"], **NET)
    mel, post, attn, stop = small(chars, t(d["tf_mel_target"]), spk)
    np.testing.assert_allclose(mel.numpy(), d["tf_mel_outputs"], **NET)
    np.testing.assert_allclose(post.numpy(), d["tf_postnet_outputs"], **NET)
    np.testing.assert_allclose(attn.numpy(), d["tf_attention"], **ATTN)
    np.testing.assert_allclose(stop.numpy(), d["tf_stop_tokens"], **NET)


@torch.inference_mode()
def test_generate_padded_batch(small, gen):
    stops = []
    mel, post, attn = small.generate_rtvc(t(gen["gen_chars"]), t(gen["gen_speaker_embeds"]),
                                          steps=int(gen["gen_steps_arg"]), stop_hook=stops.append)
    np.testing.assert_allclose(mel.numpy(), gen["gen_mel_outputs"], **NET)
    np.testing.assert_allclose(post.numpy(), gen["gen_postnet_outputs"], **NET)
    np.testing.assert_allclose(attn.numpy(), gen["gen_attention"], **ATTN)
    np.testing.assert_allclose(torch.cat(stops, 1).numpy(),
                               gen["gen_stop_tokens_per_decoder_step"], **NET)


@torch.inference_mode()
def test_generate_1d_embedding(small, gen):
    mel, post, attn = small.generate_rtvc(t(gen["gen1d_chars"]), t(gen["gen1d_speaker_embed"]),
                                          steps=int(gen["gen1d_steps_arg"]))
    np.testing.assert_allclose(post.numpy(), gen["gen1d_postnet_outputs"], **NET)
    np.testing.assert_allclose(mel.numpy(), gen["gen1d_mel_outputs"], **NET)
    np.testing.assert_allclose(attn.numpy(), gen["gen1d_attention"], **ATTN)


@torch.inference_mode()
def test_generate_dropout_on_same_rng_calls(small, gen):
    g = torch.Generator().manual_seed(int(gen["gen_dropout_on_torch_seed"]))
    mel, post, attn = small.generate_rtvc(t(gen["gen_chars"]), t(gen["gen_speaker_embeds"]),
                                          steps=int(gen["gen_steps_arg"]), generator=g)
    np.testing.assert_allclose(mel.numpy(), gen["gen_dropout_on_mel_outputs"], **NET)
    np.testing.assert_allclose(post.numpy(), gen["gen_dropout_on_postnet_outputs"], **NET)
    np.testing.assert_allclose(attn.numpy(), gen["gen_dropout_on_attention"], **ATTN)


@torch.inference_mode()
def test_generate_stop_bias(golden, gen):
    model = _small_model(golden)
    model.decoder.stop_proj.bias += 5.0
    mel, post, attn = model.generate_rtvc(t(gen["gen_chars"]), t(gen["gen_speaker_embeds"]),
                                          steps=int(gen["gen_steps_arg"]))
    n_frames = gen["gen_stopbias_plus5_postnet_outputs"].shape[2]  # RTVC stopped early (14 frames)
    assert n_frames < int(gen["gen_steps_arg"])
    assert post.shape[2] == n_frames and attn.shape[1] == n_frames // model.cfg.r
    np.testing.assert_allclose(mel.numpy(), gen["gen_stopbias_plus5_mel_outputs"], **NET)
    np.testing.assert_allclose(post.numpy(), gen["gen_stopbias_plus5_postnet_outputs"], **NET)
    np.testing.assert_allclose(attn.numpy(), gen["gen_stopbias_plus5_attention"], **ATTN)
    # The fast path stops each item at its own stop token: here all at t = 12 as well.
    engine = FastTacotron(model)
    seqs = [[c for c in row if c] for row in gen["gen_chars"].tolist()]
    for i, res in enumerate(engine.generate(seqs, t(gen["gen_speaker_embeds"]), max_frames=60)):
        assert res.stopped and res.mel.shape == (80, n_frames)


@torch.inference_mode()
def test_fast_path_matches_golden_single_item(golden, gen):
    engine = FastTacotron(_small_model(golden))
    seq = gen["gen1d_chars"][0].tolist()
    assert 0 not in seq
    res = engine.generate([seq], t(gen["gen1d_speaker_embed"])[None],
                          max_frames=int(gen["gen1d_steps_arg"]), return_alignments=True)[0]
    np.testing.assert_allclose(res.mel.numpy(), gen["gen1d_postnet_outputs"][0], **NET)
    np.testing.assert_allclose(res.decoder_mel.numpy(), gen["gen1d_mel_outputs"][0], **NET)
    np.testing.assert_allclose(res.alignment.numpy(), gen["gen1d_attention"][0], **ATTN)


def test_synthesize_spectrograms_reference(golden):
    d = np.load(golden / "synthesizer" / "synthesize_spectrograms.npz")
    texts = json.loads((golden / "synthesizer" / "synthesize_spectrograms_texts.json")
                       .read_text())["texts"]
    syn = Synthesizer.load(golden / "synthesizer" / "synthesizer_small.pt")
    specs, align = synthesize_spectrograms_rtvc(syn.model, texts, d["speaker_embeds"],
                                                steps=int(d["steps_arg"]))
    for i, spec in enumerate(specs):
        np.testing.assert_allclose(spec, d[f"spec_{i}"], **NET)
    np.testing.assert_allclose(align, d["alignments_last_batch"], **ATTN)
    # The public path equals RTVC for the batch's longest text (no padding involved).
    longest = int(np.argmax([len(syn.text_to_sequence(x)) for x in texts]))
    mel = syn.synthesize(texts[longest], d["speaker_embeds"][longest], prenet_dropout=False,
                         max_frames=int(d["steps_arg"]))
    np.testing.assert_allclose(mel, d[f"spec_{longest}"], **NET)


def test_full_size_manifest_and_strict_load(golden, tmp_path):
    manifest = json.loads((golden / "synthesizer" / "tacotron_full_manifest.json").read_text())
    model = Tacotron(SynthesizerConfig())
    sd = model.state_dict()
    assert list(sd) == list(manifest["state_dict"])
    for key, spec in manifest["state_dict"].items():
        assert list(sd[key].shape) == spec["shape"], key
        assert str(sd[key].dtype).removeprefix("torch.") == spec["dtype"], key
    assert sum(p.numel() for p in model.parameters()) == manifest["n_parameters"]
    # An RTVC-format file with these keys loads with strict key matching.
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
        model.decoder.r.fill_(2)
    path = tmp_path / "synthesizer.pt"
    torch.save({"model_state": model.state_dict(), "optimizer_state": {}}, path)
    syn = Synthesizer.load(path)
    assert syn.r == 2 and syn.config == SynthesizerConfig()
    strict = Tacotron(SynthesizerConfig())
    strict.load_state_dict(torch.load(path, weights_only=True)["model_state"], strict=True)
    for key, value in syn.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


@torch.inference_mode()
def test_fast_path_equals_reference_full_size():
    """At full size (random weights), fused/fast decoding = RTVC's loop within float noise."""
    torch.manual_seed(1)
    model = Tacotron(SynthesizerConfig())
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                torch.nn.init.xavier_uniform_(p)
        model.decoder.r.fill_(2)
        model.decoder.stop_proj.bias.fill_(-20.0)
    seq = torch.randint(2, 66, (40,)).tolist() + [1]
    spk = torch.nn.functional.normalize(torch.rand(1, 256), dim=1)
    _, post, attn = model.generate_rtvc(torch.tensor([seq]), spk, steps=16)
    res = FastTacotron(model).generate([seq], spk, max_frames=16, return_alignments=True)[0]
    assert not res.stopped
    np.testing.assert_allclose(res.mel.numpy(), post[0].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(res.alignment.numpy(), attn[0].numpy(), rtol=0, atol=1e-6)


@torch.inference_mode()
def test_output_buffers_grow(golden, gen, monkeypatch):
    """Long decodes grow the output buffers: same frames as a run that never grew them."""
    from sv2tts.synthesizer import inference

    engine = FastTacotron(_small_model(golden))
    seq = gen["gen1d_chars"][0].tolist()
    spk = t(gen["gen1d_speaker_embed"])[None]
    ref = engine.generate([seq], spk, fixed_steps=11, return_alignments=True)[0]
    monkeypatch.setattr(inference, "_INITIAL_STEPS", 2)
    grown = engine.generate([seq], spk, fixed_steps=11, return_alignments=True)[0]
    assert grown.decoder_mel.shape == (80, 22) and grown.alignment.shape == (11, len(seq))
    np.testing.assert_array_equal(grown.decoder_mel.numpy(), ref.decoder_mel.numpy())
    np.testing.assert_array_equal(grown.alignment.numpy(), ref.alignment.numpy())
