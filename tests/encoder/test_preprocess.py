"""The encoder's audio front end against RTVC's golden numbers and its documented behaviour."""
import json

import numpy as np
import pytest

from sv2tts.core.audio import load_audio, resample
from sv2tts.core.dsp import normalize_volume
from sv2tts.encoder import preprocess
from sv2tts.encoder.config import EncoderConfig


@pytest.fixture(scope="module")
def audio_npz(golden):
    return np.load(golden / "encoder" / "encoder_audio.npz")


@pytest.fixture(scope="module")
def files(golden):
    files = json.loads((golden / "encoder" / "encoder_index.json").read_text())["files"]
    assert files
    return files


@pytest.fixture(scope="module")
def utterances(audio_npz, files):
    ids = [f["utt_id"] for f in files]
    assert sorted(ids) == sorted(k.removesuffix("__wav") for k in audio_npz if k.endswith("__wav"))
    return ids


def test_partial_slices_match_every_golden_case(golden):
    data = json.loads((golden / "encoder" / "partial_slices.json").read_text())
    assert len(data["cases"]) > 50
    for case in data["cases"]:
        kwargs = dict(case["kwargs"])
        if "partial_utterance_n_frames" in kwargs:
            kwargs["partial_frames"] = kwargs.pop("partial_utterance_n_frames")
        wav_slices, mel_slices = preprocess.partial_slices(case["n_samples"], **kwargs)
        assert [[s.start, s.stop] for s in wav_slices] == case["wave_slices"], case
        assert [[s.start, s.stop] for s in mel_slices] == case["mel_slices"], case


@pytest.mark.parametrize("n, count, last", [(0, 1, (0, 25600)), (25600, 1, (0, 25600)),
                                            (38400, 2, (12800, 38400)), (48000, 3, (25600, 51200)),
                                            (160000, 12, (140800, 166400))])
def test_partial_slices_spec_examples(n, count, last):
    wav_slices, _ = preprocess.partial_slices(n)
    assert len(wav_slices) == count and (wav_slices[-1].start, wav_slices[-1].stop) == last


def test_preprocessed_wav_and_mel_match_rtvc(golden, audio_npz, files, utterances):
    cfg = EncoderConfig()
    for f in files:
        u = f["utt_id"]
        raw, rate = load_audio(golden / f["file"])
        assert len(raw) == int(audio_npz[f"{u}__raw_len"]) == f["raw_len"] and rate == 16000
        wav = normalize_volume(raw, cfg.target_dbfs)
        wav = preprocess.trim_long_silences(wav, cfg)
        expected = audio_npz[f"{u}__wav"]
        assert len(wav) == len(expected), u  # VAD decisions are binary: exact length
        np.testing.assert_allclose(wav, expected, atol=1e-6, err_msg=u)
        mel = preprocess.mel_frames(expected, cfg)
        ref = audio_npz[f"{u}__mel"]
        assert mel.shape == ref.shape == (1 + len(expected) // 160, 40)
        np.testing.assert_allclose(mel, ref, rtol=1e-4, atol=1e-4 * ref.max(), err_msg=u)


def test_mel_frames_range_equals_slice_of_whole_mel(audio_npz, utterances):
    wav = audio_npz[f"{utterances[0]}__wav"]
    whole = preprocess.mel_frames(np.pad(wav, (0, 25600)))
    for start, stop in [(0, 160), (80, 240), (300, 460), (0, 1)]:
        np.testing.assert_allclose(preprocess.mel_frames_range(wav, start, stop), whole[start:stop],
                                   rtol=1e-5, atol=1e-6 * whole.max())


def test_resampling_matches_rtvc_kaiser_best(golden):
    extra = np.load(golden / "encoder" / "encoder_extra.npz")
    out = resample(extra["resample_in"], int(extra["resample_in_sr"]), 16000)
    ref = extra["resample_out_no_norm_no_trim"]
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-5)


class _LoudVad:
    """Stand-in for webrtcvad.Vad: a 30 ms window is "speech" when it holds a sample above 0.25."""

    def __init__(self, mode):
        pass

    def is_speech(self, pcm, sample_rate):
        return np.frombuffer(pcm, "<i2").max() > 0.25 * 32767


def _windows(flagged, n=38):
    """n windows of 480 samples: window i is i/1000 (quiet, distinct) plus 0.5 when flagged."""
    wav = np.repeat(np.arange(1, n + 1) / 1000, 480).astype(np.float32)
    for i in flagged:
        wav[i * 480:(i + 1) * 480] += 0.5
    return wav


def _kept(wav, windows):
    return np.concatenate([wav[i * 480:(i + 1) * 480] for i in windows])


def test_vad_mask_rule_matches_spec_example(monkeypatch):
    # Spec example: flags at windows 2-6, 19 and 30-35 of 38 -> after the moving average (8
    # windows) and rounding True at 2-5 and 30-34 -> after dilation True at 0-8 and 27-37.
    import webrtcvad

    monkeypatch.setattr(webrtcvad, "Vad", _LoudVad)
    wav = _windows([2, 3, 4, 5, 6, 19, 30, 31, 32, 33, 34, 35])
    no_dilation = EncoderConfig(vad_max_silence_length=0)
    np.testing.assert_array_equal(preprocess.trim_long_silences(wav, no_dilation),
                                  _kept(wav, [2, 3, 4, 5, 30, 31, 32, 33, 34]))
    tail = np.full(100, 0.5, np.float32)  # not a whole window: dropped
    np.testing.assert_array_equal(preprocess.trim_long_silences(np.concatenate([wav, tail])),
                                  _kept(wav, [*range(0, 9), *range(27, 38)]))


@pytest.mark.parametrize("run, kept", [(1, 0), (4, 0), (5, 4), (8, 7)])
def test_vad_needs_more_than_half_of_8_windows(monkeypatch, run, kept):
    # A window survives when 5 of the 8 around it are flagged: 4 of 8 averages to 0.5, which
    # rounds to even (0), so a run of 4 voiced windows is dropped; a run of 5 keeps 4 windows.
    import webrtcvad

    monkeypatch.setattr(webrtcvad, "Vad", _LoudVad)
    wav = _windows(range(10, 10 + run), n=30)
    trimmed = preprocess.trim_long_silences(wav, EncoderConfig(vad_max_silence_length=0))
    assert len(trimmed) == 480 * kept


def test_trimming_removes_a_pure_tone_entirely():
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(48000) / 16000)).astype(np.float32)
    assert len(preprocess.trim_long_silences(tone)) == 0


def test_sine_mel_check_value():
    sine = (0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    mel = preprocess.mel_frames(sine)
    assert mel.shape == (101, 40)
    assert abs(mel.sum() - 5096.88) < 0.05 and abs(mel.max() - 41.078) < 1e-3
    assert int(mel.mean(axis=0).argmax()) == 5
