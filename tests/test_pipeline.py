"""`sv2tts.clone()` and `Pipeline`: end to end with small random-weight RTVC-format models."""
import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

import sv2tts
from sv2tts.errors import InputError, ModelNotFoundError, TextError
from sv2tts.pipeline import Pipeline, load_voice, postprocess_output, save_voice

REF = "1688-142285-0003.flac"
TEXT = "Hello world. This is a test of the cloning pipeline!"


@pytest.fixture(scope="module")
def pipe(model_files):
    return Pipeline(synthesizer=model_files["synthesizer"], vocoder=model_files["vocoder"]).load_all()


def test_clone_gives_16k_float32_speech_length(pipe, golden):
    wav = pipe.clone(golden / "audio" / REF, TEXT, seed=3)
    assert wav.dtype == np.float32 and wav.ndim == 1 and len(wav) > 0 and np.isfinite(wav).all()
    # 2 sentences x 14 frames + a pause, vocoded, +1 s pad: bounded by that length.
    assert len(wav) <= (2 * 14 + sv2tts.synthesizer.PAUSE_FRAMES) * 200 + 16000


def test_seed_makes_clone_reproducible(pipe, golden):
    a = pipe.clone(golden / "audio" / REF, "Same words.", seed=7)
    b = pipe.clone(golden / "audio" / REF, "Same words.", seed=7)
    np.testing.assert_array_equal(a, b)


def test_module_level_clone_accepts_paths_and_griffinlim(model_files, golden):
    wav = sv2tts.clone(golden / "audio" / REF, "Short one.", synthesizer=model_files["synthesizer"],
                       vocoder="griffinlim", seed=1)
    assert wav.dtype == np.float32 and len(wav) > 0


def test_voice_file_round_trip(pipe, golden, tmp_path):
    voice = pipe.embed(golden / "audio" / REF)
    path = save_voice(tmp_path / "v.npy", voice)
    np.testing.assert_allclose(load_voice(path), voice, atol=1e-6)
    np.testing.assert_array_equal(pipe.clone(path, "From a voice file.", seed=2),
                                  pipe.clone(golden / "audio" / REF, "From a voice file.", seed=2))


@pytest.mark.parametrize("content, message", [
    (np.zeros(128, np.float32), "expected a \\(256,\\) float voice"),
    (np.zeros((2, 256), np.float32), "expected a \\(256,\\) float voice"),
    (np.full(256, np.nan, np.float32), "NaN/inf or is all zeros"),
])
def test_bad_voice_files(tmp_path, content, message):
    np.save(tmp_path / "bad.npy", content)
    with pytest.raises(InputError, match=message):
        load_voice(tmp_path / "bad.npy")


def test_empty_text_is_an_error(pipe, golden):
    with pytest.raises(TextError):
        pipe.clone(golden / "audio" / REF, "   ")


def test_wav_bytes_and_base64(pipe, golden):
    wav = pipe.clone(golden / "audio" / REF, "Bytes please.", seed=4)
    data = sv2tts.to_wav_bytes(wav)
    assert data[:4] == b"RIFF"
    back, rate = sf.read(io.BytesIO(base64.b64decode(sv2tts.to_base64(wav))), dtype="float32")
    assert rate == 16000 and len(back) == len(wav)


def test_concurrent_calls_are_safe_and_correct(pipe, golden):
    texts = [f"Caller number {i} speaks." for i in range(4)]
    expected = {t: pipe.clone(golden / "audio" / REF, t, seed=11) for t in texts}
    barrier = threading.Barrier(4)

    def call(text):
        barrier.wait()
        return text, pipe.clone(golden / "audio" / REF, text, seed=11)

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


def test_offline_without_cached_models_is_one_clear_error(tmp_path, monkeypatch, golden):
    monkeypatch.setenv("SV2TTS_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SV2TTS_MODEL_URL", "http://127.0.0.1:9")  # discard port: refused
    with pytest.raises(ModelNotFoundError) as info:
        Pipeline().clone(golden / "audio" / REF, "Hello.")
    msg = str(info.value)
    assert "synthesizer.pt" in msg and str(tmp_path / "cache") in msg and "sv2tts models download" in msg
    assert "\n" not in msg


def test_postprocess_pads_normalises_and_trims():
    rng = np.random.default_rng(0)
    silence = np.zeros(16000, np.float32)
    quiet_noise = (0.001 * rng.standard_normal(8000)).astype(np.float32)
    out = postprocess_output(np.concatenate([quiet_noise, silence]))
    assert len(out) > 0 and np.isfinite(out).all()


def test_device_validation():
    from sv2tts.pipeline import resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(InputError):
        resolve_device("tpu")
