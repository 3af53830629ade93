"""Public synthesis API: shapes, batching, long text, seeds, threads and bad input."""
from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
import torch

import sv2tts
from sv2tts.core.errors import CheckpointError, InputError, Sv2ttsError, TextError
from sv2tts import synthesize
from sv2tts.pipeline import PAUSE_FRAMES
from sv2tts.synthesizer import Synthesizer, trim_trailing

TEXTS = ["Hi.", "The quick brown fox jumps over the lazy dog.", "Numbers: 1999 and $3.50!"]


@pytest.fixture(scope="module")
def ckpt(golden):
    return golden / "synthesizer" / "synthesizer_small.pt"


@pytest.fixture(scope="module")
def syn(ckpt):
    return Synthesizer.load(ckpt)


@pytest.fixture(scope="module")
def embeds():
    rng = np.random.RandomState(0)
    e = rng.rand(4, 256).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_public_names():
    assert sv2tts.Synthesizer is Synthesizer
    assert callable(sv2tts.griffin_lim)
    from sv2tts.synthesizer import text_to_sequence
    assert text_to_sequence("a") == [28, 1]


def test_single_text(syn, embeds):
    mel = syn.synthesize(TEXTS[1], embeds[0], prenet_dropout=False, max_frames=40)
    assert isinstance(mel, np.ndarray) and mel.dtype == np.float32
    assert mel.shape[0] == 80 and 1 <= mel.shape[1] <= 40
    assert np.isfinite(mel).all()
    assert syn.r == 2 and syn.sample_rate == 16000 and syn.config.lstm_dims == 64
    assert "Synthesizer(" in repr(syn)


def test_list_of_texts_batch_equals_single(syn, embeds):
    """A text's mel does not depend on the other texts of its batch (dropout off)."""
    batched = syn.synthesize(TEXTS, embeds[:3], prenet_dropout=False, max_frames=60)
    assert isinstance(batched, list) and len(batched) == 3
    for text, emb, mel in zip(TEXTS, embeds, batched):
        alone = syn.synthesize(text, emb, prenet_dropout=False, max_frames=60)
        assert alone.shape == mel.shape
        np.testing.assert_allclose(mel, alone, rtol=1e-4, atol=1e-5)


def test_one_embedding_for_all_texts(syn, embeds):
    a = syn.synthesize(TEXTS[:2], embeds[1], prenet_dropout=False, max_frames=30)
    b = syn.synthesize(TEXTS[:2], np.stack([embeds[1]] * 2), prenet_dropout=False, max_frames=30)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_float64_and_tensor_embeddings(syn, embeds):
    ref = syn.synthesize(TEXTS[0], embeds[0], prenet_dropout=False, max_frames=20)
    for e in (embeds[0].astype(np.float64), torch.from_numpy(embeds[0]), embeds[0][None]):
        out = syn.synthesize(TEXTS[0], e, prenet_dropout=False, max_frames=20)
        np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_seed_reproducible_dropout(syn, embeds):
    a = syn.synthesize(TEXTS[1], embeds[0], seed=7, max_frames=30)
    b = syn.synthesize(TEXTS[1], embeds[0], seed=7, max_frames=30)
    c = syn.synthesize(TEXTS[1], embeds[0], seed=8, max_frames=30)
    off = syn.synthesize(TEXTS[1], embeds[0], prenet_dropout=False, max_frames=30)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.allclose(a, c)
    assert a.shape != off.shape or not np.allclose(a, off)


def test_threads_share_one_model(syn, embeds):
    expected = [syn.synthesize(TEXTS[i % 3], embeds[i % 3], seed=i, max_frames=24)
                for i in range(4)]
    results = [None] * 4

    def work(i):
        results[i] = syn.synthesize(TEXTS[i % 3], embeds[i % 3], seed=i, max_frames=24)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_reduced_precision_is_close_to_float32(ckpt, syn, embeds, precision):
    """The decoder LSTMs' weights in bfloat16 / int8: mels within 0.1% of float32's largest value;
    the load-time default and the per-call option give the same numbers; "reference" is float32."""
    from sv2tts.core.native import native_module

    text = TEXTS[1]
    exact = syn.synthesize(text, embeds[0], prenet_dropout=False, max_frames=100)
    assert np.array_equal(syn.synthesize(text, embeds[0], prenet_dropout=False, max_frames=100,
                                         precision="reference"), exact)
    mel = syn.synthesize(text, embeds[0], prenet_dropout=False, max_frames=100, precision=precision)
    assert mel.shape == exact.shape
    diff = float(np.abs(mel - exact).max())
    assert diff < 1e-3 * float(np.abs(exact).max())
    if native_module(precision)[0] is None:  # no kernel of that precision here: float32 is used
        assert diff == 0
    else:
        assert diff > 0
    by_default = Synthesizer.load(ckpt, precision=precision)
    assert np.array_equal(by_default.synthesize(text, embeds[0], prenet_dropout=False, max_frames=100), mel)
    with pytest.raises(InputError, match="precision='int4': expected one of float32, bfloat16, int8"):
        syn.synthesize(text, embeds[0], precision="int4")


def test_long_text_in_sentences(syn, embeds, caplog):
    """The pipeline splits a long text into sentence groups and joins their mels."""
    sentence = "This is sentence number {} of a long text, read by a tiny model. "
    text = "".join(sentence.format(i) for i in range(200))[:10_000]
    assert len(text) == 10_000
    with caplog.at_level(logging.WARNING):
        mel = sv2tts.Pipeline(synthesizer=syn, max_text_chars=None).synthesize(
            text, embeds[0], prenet_dropout=False, max_frames=4)
    n_sentences = len(sv2tts.synthesizer.split_sentences(text))
    assert n_sentences > 100
    # every sentence gives <= 4 frames, joined with PAUSE_FRAMES of silence
    assert mel.shape[1] >= n_sentences + (n_sentences - 1) * PAUSE_FRAMES
    assert mel.shape[1] <= 4 * n_sentences + (n_sentences - 1) * PAUSE_FRAMES
    # sentences hitting max_frames are named in warnings
    assert "reached max_frames=4" in caplog.text and "sentence number 0" in caplog.text
    with pytest.raises(TextError, match="10,000 characters; the limit is 5,000"):
        synthesize(text, embeds[0], synthesizer=syn)  # the default cap, before any work


def test_max_frames_warning_names_the_text(syn, embeds, caplog):
    with caplog.at_level(logging.WARNING):
        mel = syn.synthesize("A sentence that cannot finish.", embeds[0], prenet_dropout=False,
                             max_frames=6)
    assert mel.shape[1] <= 6
    assert "A sentence that cannot finish." in caplog.text


def test_module_function_with_path(ckpt, embeds):
    mel = synthesize("Hello.", embeds[0], synthesizer=ckpt, prenet_dropout=False, max_frames=12)
    assert mel.shape[0] == 80
    with pytest.raises(InputError):
        synthesize("Hello.", embeds[0], synthesizer=42)


def test_trim_trailing():
    mel = np.full((80, 6), -4.0, np.float32)
    mel[3, :3] = 0.0
    assert trim_trailing(mel).shape == (80, 3)
    assert trim_trailing(np.full((80, 5), -4.0, np.float32)).shape == (80, 1)
    mel[3, 4] = -3.3  # above the threshold -3.4: kept
    assert trim_trailing(mel).shape == (80, 5)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text(syn, embeds, text):
    with pytest.raises(TextError, match="empty"):
        syn.synthesize(text, embeds[0])


def test_unpronounceable_text(syn, embeds):
    with pytest.raises(TextError, match="nothing to synthesise"):
        syn.synthesize("### %%% ***", embeds[0])
    with pytest.raises(TextError, match="text 1"):
        syn.synthesize(["fine", "{HH AH0}"], embeds[0])


@pytest.mark.parametrize("text", [42, None, b"bytes", ["ok", 3], []])
def test_not_a_str(syn, embeds, text):
    with pytest.raises(TextError):
        syn.synthesize(text, embeds[0])


@pytest.mark.parametrize("emb", [np.zeros(255, np.float32), np.zeros((2, 256), np.float32),
                                 np.zeros((1, 1, 256), np.float32), np.zeros(256, np.int64),
                                 "abc", [[1.0, 2.0], [3.0]]])
def test_embedding_wrong_shape_or_type(syn, emb):
    with pytest.raises(InputError, match="embedding"):
        syn.synthesize(["one", "two", "three"], emb)


def test_embedding_nan(syn, embeds):
    bad = embeds[0].copy()
    bad[5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        syn.synthesize("Hello.", bad)


@pytest.mark.parametrize("kwargs", [{"max_frames": 0}, {"max_frames": 2.5},
                                    {"max_frames": True}, {"seed": -1}, {"seed": "x"}])
def test_bad_options(syn, embeds, kwargs):
    with pytest.raises(InputError):
        syn.synthesize("Hello.", embeds[0], **kwargs)


def test_checkpoint_of_another_model(golden):
    with pytest.raises(CheckpointError, match="not an RTVC synthesizer"):
        Synthesizer.load(golden / "vocoder" / "vocoder.pt")


def test_truncated_checkpoint(ckpt, tmp_path):
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        Synthesizer.load(bad)


def test_missing_and_bad_checkpoints(ckpt, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        Synthesizer.load(tmp_path / "nope.pt")
    sd = torch.load(ckpt, weights_only=True)["model_state"]
    broken = dict(sd)
    broken["decoder.mel_proj.weight"] = broken["decoder.mel_proj.weight"][:, :10]
    torch.save({"model_state": broken}, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match="shape"):
        Synthesizer.load(tmp_path / "shape.pt")
    nan = dict(sd)
    nan["post_proj.weight"] = torch.full_like(sd["post_proj.weight"], float("nan"))
    torch.save({"model_state": nan}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN"):
        Synthesizer.load(tmp_path / "nan.pt")
    partial = {k: v for k, v in sd.items() if not k.startswith("postnet.")}
    torch.save({"model_state": partial}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="missing"):
        Synthesizer.load(tmp_path / "partial.pt")


def test_checkpoint_without_batchnorm_counters_loads(ckpt, tmp_path):
    sd = torch.load(ckpt, weights_only=True)["model_state"]
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    torch.save({"model_state": sd, "optimizer_state": {}}, tmp_path / "old.pt")
    assert Synthesizer.load(tmp_path / "old.pt").r == 2


def test_bad_device(ckpt):
    with pytest.raises(InputError, match="device"):
        Synthesizer.load(ckpt, device="not-a-device")


def test_errors_are_value_errors():
    assert issubclass(TextError, ValueError) and issubclass(InputError, Sv2ttsError)


def test_checkpoint_with_a_smaller_vocabulary_is_refused(tmp_path):
    from sv2tts.synthesizer.config import SynthesizerConfig
    from sv2tts.synthesizer.model import Tacotron

    small = Tacotron(SynthesizerConfig(num_chars=10, embed_dims=16, encoder_dims=16, decoder_dims=16,
                                       postnet_dims=16, lstm_dims=16))
    torch.save({"model_state": small.state_dict()}, tmp_path / "tiny_vocab.pt")
    with pytest.raises(CheckpointError, match="has 10 symbol embeddings; RTVC's text front end needs 66"):
        Synthesizer.load(tmp_path / "tiny_vocab.pt")
