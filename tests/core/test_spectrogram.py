"""Synthesizer audio maths against RTVC's golden outputs (atol 1e-4, golden README)."""
from __future__ import annotations

import numpy as np
import pytest

import sv2tts
from sv2tts.core.errors import InputError
from sv2tts.core import spectrogram as audio


@pytest.fixture(scope="module")
def data(golden):
    return np.load(golden / "synthesizer" / "synth_audio.npz")


def test_mel_basis(data):
    basis = audio.mel_basis()
    assert basis.dtype == np.float32 and basis.shape == (80, 401)
    np.testing.assert_allclose(basis, data["mel_basis"], rtol=0, atol=1e-7)
    assert np.isclose(basis.sum(), 3.9994979, atol=1e-5)


def cases(data, suffix):
    """The <u> of every <u>__wav array that has a <u><suffix> partner (file ids, "synthetic")."""
    found = [k.removesuffix("__wav") for k in data if k.endswith("__wav") and
             k.removesuffix("__wav") + suffix in data]
    assert found, f"no <u>__wav arrays with <u>{suffix}"
    return found


def test_melspectrogram(data):
    for utt in cases(data, "__mel"):
        mel = audio.melspectrogram(data[f"{utt}__wav"])
        expected = data[f"{utt}__mel"]
        assert mel.dtype == np.float32 and mel.shape == expected.shape, utt
        assert mel.shape[1] == 1 + len(data[f"{utt}__wav"]) // 200, utt
        np.testing.assert_allclose(mel, expected, rtol=0, atol=1e-4, err_msg=utt)


def test_linearspectrogram(data):
    for utt in cases(data, "__linear"):
        lin = audio.linearspectrogram(data[f"{utt}__wav"])
        assert lin.shape == data[f"{utt}__linear"].shape, utt
        np.testing.assert_allclose(lin, data[f"{utt}__linear"], rtol=0, atol=1e-4, err_msg=utt)


def test_silence_and_sine():
    assert (audio.melspectrogram(np.zeros(1600, np.float32)) == -4.0).all()
    t = np.arange(16000) / 16000
    mel = audio.melspectrogram((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    assert mel.shape == (80, 81)
    assert mel.min() == -4.0 and abs(mel.max() - 1.98976) < 1e-4
    assert abs(mel.mean() - -3.6674845) < 1e-4


def test_griffin_lim(data):
    seed = int(data["gl_seed"])
    np.testing.assert_array_equal(np.random.RandomState(seed).rand(401, 20),
                                  data["gl_random_phase"])
    wav = sv2tts.griffin_lim(data["gl_mel_in"], seed=seed)
    assert wav.dtype == np.float32 and wav.shape == data["gl_wav_iters60"].shape
    np.testing.assert_allclose(wav, data["gl_wav_iters60"], rtol=0, atol=1e-4)
    wav0 = audio.griffin_lim(data["gl_mel_in"], seed=seed, n_iter=0)
    np.testing.assert_allclose(wav0, data["gl_wav_iters0"], rtol=0, atol=1e-4)


def test_griffin_lim_seed_reproducible(data):
    mel = data["gl_mel_in"]
    a = audio.griffin_lim(mel, seed=3, n_iter=2)
    b = audio.griffin_lim(mel, seed=3, n_iter=2)
    c = audio.griffin_lim(mel, seed=4, n_iter=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("bad", [np.zeros((2, 100)), np.zeros(0), np.arange(10),
                                 np.array([0.0, np.nan])])
def test_bad_wav(bad):
    with pytest.raises(InputError):
        audio.melspectrogram(bad)


@pytest.mark.parametrize("bad", [np.zeros((40, 10)), np.zeros((80, 0)), np.zeros(80),
                                 np.full((80, 5), np.inf)])
def test_bad_mel(bad):
    with pytest.raises(InputError):
        audio.griffin_lim(bad, n_iter=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_fft,hop,win,center", [(400, 160, None, True), (800, 200, 800, True),
                                                  (400, 160, None, False), (800, 200, 600, True)])
def test_stft_equals_librosa(dtype, n_fft, hop, win, center):
    """Our STFT (no librosa import on the cloning path: ~1.5 s) gives librosa.stft's numbers."""
    import librosa

    y = np.random.RandomState(n_fft).randn(16_003).astype(dtype) * 0.2
    ours = audio.stft(y, n_fft, hop, win, center)
    theirs = librosa.stft(y=y, n_fft=n_fft, hop_length=hop, win_length=win, window="hann", center=center,
                          pad_mode="constant")
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12 * float(np.abs(theirs).max()) if dtype == np.float64
                               else 1e-6 * float(np.abs(theirs).max()))


@pytest.mark.parametrize("args", [(16000, 400, 40, 0.0, None), (16000, 800, 80, 55.0, 7600.0), (22050, 1024, 128, 0.0, 8000.0)])
def test_mel_filters_equal_librosa(args):
    import librosa

    sr, n_fft, n_mels, fmin, fmax = args
    ours = audio.mel_filters(sr, n_fft, n_mels, fmin, fmax)
    theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm="slaney")
    assert ours.dtype == np.float32 and not ours.flags.writeable
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-9)


def test_stft_of_too_short_audio_is_an_input_error():
    with pytest.raises(InputError, match="shorter than one 400-sample frame"):
        audio.stft(np.zeros(100, dtype=np.float32), 400, 160, center=False)

