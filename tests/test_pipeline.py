"""`sv2tts.clone()` and `Pipeline`: end to end with small random-weight RTVC-format models."""
import base64
import io
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

import sv2tts
from sv2tts.core.errors import InputError, ModelNotFoundError, TextError
from sv2tts import Pipeline, load_voice, save_voice
from sv2tts.pipeline import PAUSE_FRAMES, sentence_groups

TEXT = "Hello world. This is a test of the cloning pipeline!"


@pytest.fixture(scope="module")
def pipe(model_files):
    return Pipeline(synthesizer=model_files["synthesizer"], vocoder=model_files["vocoder"]).load_all()


def test_clone_gives_16k_float32_speech_length(pipe, example_clip):
    wav = pipe.clone(example_clip, TEXT, seed=3)
    assert wav.dtype == np.float32 and wav.ndim == 1 and len(wav) > 0 and np.isfinite(wav).all()
    # 2 sentences x 14 frames + a pause, vocoded, +1 s pad: bounded by that length.
    assert len(wav) <= (2 * 14 + PAUSE_FRAMES) * 200 + 16000


def test_seed_makes_clone_reproducible(pipe, example_clip):
    a = pipe.clone(example_clip, "Same words.", seed=7)
    b = pipe.clone(example_clip, "Same words.", seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, pipe.clone(example_clip, "Same words.", seed=8))


def test_module_level_clone_accepts_paths_and_griffinlim(model_files, example_clip):
    wav = sv2tts.clone(example_clip, "Short one.", synthesizer=model_files["synthesizer"],
                       vocoder="griffinlim", seed=1)
    assert wav.dtype == np.float32 and len(wav) > 0
    same = Pipeline(synthesizer=model_files["synthesizer"], vocoder="griffinlim").clone(
        str(example_clip), "Short one.", seed=1)
    np.testing.assert_array_equal(wav, same)


def test_voice_file_round_trip(pipe, example_clip, tmp_path):
    voice = pipe.embed(example_clip)
    path = save_voice(tmp_path / "v.npy", voice)
    np.testing.assert_allclose(load_voice(path), voice, atol=1e-6)
    np.testing.assert_array_equal(pipe.clone(path, "From a voice file.", seed=2),
                                  pipe.clone(example_clip, "From a voice file.", seed=2))


@pytest.mark.parametrize("content, message", [
    (np.zeros(128, np.float32), "expected a \\(256,\\) float voice"),
    (np.zeros((2, 256), np.float32), "expected a \\(256,\\) float voice"),
    (np.full(256, np.nan, np.float32), "NaN/inf or is all zeros"),
])
def test_bad_voice_files(tmp_path, content, message):
    np.save(tmp_path / "bad.npy", content)
    with pytest.raises(InputError, match=message):
        load_voice(tmp_path / "bad.npy")


def test_empty_text_is_an_error(pipe, example_clip):
    with pytest.raises(TextError):
        pipe.clone(example_clip, "   ")


def test_wav_bytes_and_base64(pipe, example_clip):
    wav = pipe.clone(example_clip, "Bytes please.", seed=4)
    data = sv2tts.to_wav_bytes(wav)
    assert data[:4] == b"RIFF"
    back, rate = sf.read(io.BytesIO(base64.b64decode(sv2tts.to_base64(wav))), dtype="float32")
    assert rate == 16000 and len(back) == len(wav)
    np.testing.assert_allclose(back, np.clip(wav, -1, 1), atol=1 / 32767)  # 16-bit, clipped


def test_concurrent_calls_are_safe_and_correct(pipe, example_clip):
    texts = [f"Caller number {i} speaks." for i in range(4)]
    expected = {t: pipe.clone(example_clip, t, seed=11) for t in texts}
    barrier = threading.Barrier(4)

    def call(text):
        barrier.wait()
        return text, pipe.clone(example_clip, text, seed=11)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, texts))
    for text, wav in results:
        np.testing.assert_array_equal(wav, expected[text])


def test_models_load_once(model_files, monkeypatch):
    from sv2tts import synthesizer

    calls = []
    real = synthesizer.Synthesizer.load.__func__
    monkeypatch.setattr(synthesizer.Synthesizer, "load",
                        classmethod(lambda cls, *a, **k: calls.append(a) or real(cls, *a, **k)))
    p = Pipeline(synthesizer=model_files["synthesizer"], vocoder="griffinlim")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: p.synthesizer, range(8)))
    assert len(calls) == 1


def test_module_functions_load_each_checkpoint_once(model_files, example_clip, tmp_path, monkeypatch):
    """sv2tts.clone(..., synthesizer=path, vocoder=path) in a loop loads each file once."""
    from sv2tts.synthesizer import Synthesizer
    from sv2tts.vocoder import Vocoder

    paths = {}
    for stage in ("synthesizer", "vocoder"):  # fresh paths: not loaded by an earlier test
        paths[stage] = tmp_path / f"{stage}.pt"
        paths[stage].write_bytes(model_files[stage].read_bytes())
    loads = []
    for cls in (Synthesizer, Vocoder):
        real = cls.load.__func__
        monkeypatch.setattr(cls, "load", classmethod(
            lambda c, path, *a, _real=real, **k: loads.append(path) or _real(c, path, *a, **k)))
    first = sv2tts.clone(example_clip, "Hi there.", seed=1, **paths)
    second = sv2tts.clone(example_clip, "Hi there.", seed=1, **paths)
    np.testing.assert_array_equal(first, second)
    assert sorted(p.name for p in loads) == ["synthesizer.pt", "vocoder.pt"]
    with pytest.raises(InputError, match="synthesizer=42"):
        sv2tts.clone(example_clip, "Hi.", synthesizer=42)


LONG = ("The first sentence is long enough to be a group of its own, because the splitter keeps "
        "groups under two hundred characters in all. "
        "The second sentence is just as long, so that it too is synthesised and vocoded on its own "
        "before the third one starts. "
        "The third and last sentence closes the text, and it is long enough to stand alone as well.")


class _Recorder:
    """The real synthesizer, recording the texts it is asked for."""

    def __init__(self, synthesizer):
        self.inner, self.texts = synthesizer, []

    def synthesize(self, texts, *args, **kwargs):
        self.texts.append(texts)
        return self.inner.synthesize(texts, *args, **kwargs)


def test_stream_yields_each_group_in_order_as_soon_as_it_is_vocoded(pipe, example_clip):
    groups = sentence_groups(LONG)
    assert len(groups) == 3
    spy = _Recorder(pipe.synthesizer)
    streaming = Pipeline(pipe.encoder, spy, pipe.vocoder)
    chunks = streaming.stream(example_clip, LONG, seed=4)
    first = next(chunks)
    assert spy.texts == [groups[0]]  # nothing after the first group computed yet
    rest = list(chunks)
    assert spy.texts == groups and len(rest) == 2
    for chunk in [first, *rest]:
        assert chunk.dtype == np.float32 and chunk.ndim == 1 and len(chunk) > 0


def test_stream_speaks_a_short_text_sentence_by_sentence(pipe, example_clip):
    """clone reads a text that fits in one pass whole (as RTVC); stream splits it so the first
    sentence is heard before the second is synthesised."""
    text = "Hello there. How are you today?"
    assert sentence_groups(text) == [text]
    assert sentence_groups(text, per_sentence=True) == ["Hello there.", "How are you today?"]
    spy = _Recorder(pipe.synthesizer)
    chunks = Pipeline(pipe.encoder, spy, pipe.vocoder).stream(example_clip, text, seed=1)
    next(chunks)
    assert spy.texts == ["Hello there."]
    assert len(list(chunks)) == 1 and spy.texts == ["Hello there.", "How are you today?"]


def test_stream_is_reproducible_and_each_chunk_depends_on_its_group_and_place(pipe, example_clip):
    a = list(pipe.stream(example_clip, LONG, seed=4))
    b = list(sv2tts.stream(example_clip, LONG, synthesizer=pipe.synthesizer, vocoder=pipe.vocoder, seed=4))
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], next(pipe.stream(example_clip, LONG, seed=5)))
    two = " ".join(sentence_groups(LONG)[:2])
    prefix = list(pipe.stream(example_clip, two, seed=4))
    assert len(prefix) == 2
    for x, y in zip(prefix, a):
        np.testing.assert_array_equal(x, y)


def test_stream_checks_its_text_before_any_work(pipe, example_clip):
    with pytest.raises(TextError, match="empty"):
        next(pipe.stream(example_clip, "  "))
    with pytest.raises(TextError, match="nothing to synthesise"):
        next(pipe.stream(example_clip, "%%% ###"))


def test_offline_without_cached_models_is_one_clear_error(tmp_path, monkeypatch, example_clip):
    monkeypatch.setenv("SV2TTS_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SV2TTS_MODEL_URL", "http://127.0.0.1:9")  # discard port: refused
    with pytest.raises(ModelNotFoundError) as info:
        Pipeline().clone(example_clip, "Hello.")
    msg = str(info.value)
    assert "synthesizer.pt, vocoder.pt" in msg and str(tmp_path / "cache") in msg and "sv2tts models download" in msg
    assert "\n" not in msg


def _postprocess(wav):
    from sv2tts.pipeline import postprocess_output  # local: the function may move

    return postprocess_output(wav)


def test_postprocess_keeps_non_speech_whole_padded_and_normalised(caplog):
    quiet = (0.01 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="sv2tts"):
        out = _postprocess(quiet)
    assert "no speech detected" in caplog.text
    assert out.dtype == np.float32 and len(out) == 8000 + 16000 and not out[8000:].any()  # 1 s pad
    assert abs(10 * np.log10(np.mean(out.astype(np.float64) ** 2)) + 30) < 1e-3  # -30 dBFS
    np.testing.assert_allclose(out[:8000], quiet * (out[4] / quiet[4]), rtol=1e-5, atol=1e-7)
    loud = 50 * quiet  # -13.8 dBFS after padding: louder than -30, left as it is
    np.testing.assert_array_equal(_postprocess(loud), np.pad(loud, (0, 16000)))


def test_postprocess_trims_pauses_and_padding_of_speech(synthetic_clip):
    wav, _ = sf.read(synthetic_clip, dtype="float32")
    out = _postprocess(wav)
    assert len(out) % 480 == 0 and 0 < len(out) < len(wav)  # pad and long pauses removed
    padded = np.pad(wav, (0, 16000))
    windows = {w.tobytes() for w in padded[: len(padded) // 480 * 480].reshape(-1, 480)}
    assert all(w.tobytes() in windows for w in out.reshape(-1, 480))  # whole 30 ms windows, gain 1


def test_voice_file_that_is_not_a_plain_array_is_named_as_such(tmp_path):
    bad = tmp_path / "obj.npy"
    np.save(bad, np.array([{"not": "a voice"}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError) as info:
        load_voice(bad)
    assert "not a voice file saved by `sv2tts embed`" in str(info.value)
    assert "allow_pickle" not in str(info.value)


class _NoEmbedding:
    def embed(self, *args, **kwargs):
        raise AssertionError("the reference was embedded before the models were checked")


def test_missing_or_wrong_models_fail_before_embedding(model_files, example_clip, tmp_path):
    from sv2tts import CheckpointError

    with pytest.raises(CheckpointError, match="not found"):
        Pipeline(_NoEmbedding(), tmp_path / "nope.pt", "griffinlim").clone(example_clip, "Hello.")
    with pytest.raises(CheckpointError):  # the synthesizer's file given as the vocoder
        next(Pipeline(_NoEmbedding(), model_files["synthesizer"], model_files["synthesizer"]).stream(
            example_clip, "Hello."))


def test_module_level_clone_caps_frames(model_files, example_clip, caplog):
    with caplog.at_level(logging.WARNING, logger="sv2tts"):
        sv2tts.clone(example_clip, "Hello there.", synthesizer=model_files["synthesizer"],
                     vocoder="griffinlim", seed=0, max_frames=6)
    assert "reached max_frames=6" in caplog.text


def test_mostly_non_latin_text_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="sv2tts"):
        assert sentence_groups("Привет, как дела?") == ["Привет, как дела?"]
    assert "mostly not in the Latin alphabet" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sv2tts"):
        sentence_groups("Café, naïve résumé.")
    assert caplog.text == ""


def test_a_voice_file_whose_header_claims_a_huge_shape_allocates_nothing(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.zeros(256, np.float32))
    (tmp_path / "huge.npy").write_bytes(buf.getvalue().replace(b"(256,)", b"(10**11,)".replace(b"10**11", b"99999999999")
                                                                  .ljust(6)))
    with pytest.raises(InputError, match=r"expected a \(256,\) float voice embedding, got float32 \(99999999999,\)"):
        load_voice(tmp_path / "huge.npy")


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_clone_many_gives_each_item_what_clone_gives_it(pipe, example_clip, synthetic_clip, precision):
    items = [(example_clip, "First voice, first text.", 1), (synthetic_clip, "Second voice. Two sentences.", 2),
             (example_clip, LONG, 3), (synthetic_clip, "Short.", 4)]
    alone = [pipe.clone(ref, text, seed=seed, precision=precision) for ref, text, seed in items]
    together = pipe.clone_many(items, precision=precision)
    shuffled = pipe.clone_many([items[2], items[0], items[3], items[1]], precision=precision)
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(b, a)
    for a, b in zip([alone[2], alone[0], alone[3], alone[1]], shuffled):
        np.testing.assert_array_equal(b, a)


def test_clone_many_reports_a_bad_item_and_the_others_are_unaffected(pipe, example_clip, tmp_path):
    (tmp_path / "notes.wav").write_text("not audio\n" * 20)
    items = [(example_clip, TEXT, 5), (tmp_path / "notes.wav", TEXT, 5), (example_clip, "   ", 5),
             (example_clip, "Another text.", 6), ("just a string",)]
    out = pipe.clone_many(items)
    assert isinstance(out[1], sv2tts.AudioError) and str(out[1]).startswith(f"item 2 ({tmp_path / 'notes.wav'}): ")
    assert isinstance(out[2], TextError) and str(out[2]) == f"item 3 ({example_clip}): the text is empty"
    assert isinstance(out[4], sv2tts.InputError) and "item 5" in str(out[4]) and "(reference, text)" in str(out[4])
    np.testing.assert_array_equal(out[0], pipe.clone(example_clip, TEXT, seed=5))
    np.testing.assert_array_equal(out[3], pipe.clone(example_clip, "Another text.", seed=6))
    assert pipe.clone_many([]) == []


def test_clone_queue_gathers_concurrent_requests_and_each_gets_its_clone(pipe, example_clip, synthetic_clip,
                                                                         tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    (tmp_path / "notes.wav").write_text("not audio\n" * 20)
    jobs = [(example_clip, "One voice says this.", 1), (synthetic_clip, "Another voice. Two sentences.", 2),
            (tmp_path / "notes.wav", "Never said.", 3), (example_clip, "A third text.", 4)]
    calls = []
    real = Pipeline.clone_many
    monkeypatch.setattr(Pipeline, "clone_many", lambda self, items, **kw: calls.append(len(items)) or
                        real(self, items, **kw))
    with sv2tts.CloneQueue(pipe, window_s=0.5, max_items=8) as q:
        with ThreadPoolExecutor(4) as pool:
            futures = list(pool.map(lambda job: q.submit(*job), jobs))
        results = [f.exception() or f.result() for f in futures]
    assert sum(calls) == 4 and len(calls) < 4  # gathered
    for (ref, text, seed), result in zip(jobs, results):
        if ref.name == "notes.wav":
            assert isinstance(result, sv2tts.AudioError) and str(result).startswith(str(ref))
        else:
            np.testing.assert_array_equal(result, pipe.clone(ref, text, seed=seed))
    with pytest.raises(RuntimeError, match="closed"):
        q.submit(example_clip, "Late.")
