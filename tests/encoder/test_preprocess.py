"""The encoder's audio front end against RTVC's golden numbers and its documented behaviour."""
import json

import numpy as np
import pytest

from sv2tts.audio import load_audio, resample
from sv2tts.encoder import preprocess
from sv2tts.encoder.config import EncoderConfig


@pytest.fixture(scope="module")
def audio_npz(golden):
    return np.load(golden / "encoder" / "encoder_audio.npz")


@pytest.fixture(scope="module")
def utterances(golden):
    return [f["utt_id"] for f in json.loads((golden / "encoder" / "encoder_index.json").read_text())["files"]]


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


def test_preprocessed_wav_and_mel_match_rtvc(golden, audio_npz, utterances):
    cfg = EncoderConfig()
    for u in utterances:
        raw, rate = load_audio(golden / "audio" / f"{u}.flac")
        assert len(raw) == int(audio_npz[f"{u}__raw_len"]) and rate == 16000
        wav = preprocess.normalize_volume(raw, cfg.target_dbfs)
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


def test_normalize_volume_is_increase_only():
    quiet = (0.001 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    loud = (0.9 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    louder = preprocess.normalize_volume(quiet, -30)
    rms_db = 10 * np.log10(np.mean(louder.astype(np.float64) ** 2))
    assert abs(rms_db + 30) < 1e-3 and louder.dtype == np.float32
    assert preprocess.normalize_volume(loud, -30) is loud
    zeros = np.zeros(100, np.float32)
    assert not np.isnan(preprocess.normalize_volume(zeros)).any()


def test_vad_mask_rule_matches_spec_example():
    # Spec example: flags at windows 2-6, 19 and 30-35 of 38 -> after rounding True at 2-5 and
    # 30-34 -> after dilation True at 0-8 and 27-37. Checked through the same averaging code.
    flags = np.zeros(38)
    flags[2:7] = flags[19] = 1
    flags[30:36] = 1
    width = 8
    padded = np.concatenate([np.zeros(3), flags, np.zeros(4)])
    sums = np.cumsum(np.concatenate([[0.0], padded]))
    mask = np.round((sums[width:] - sums[:-width]) / width).astype(bool)
    assert np.flatnonzero(mask).tolist() == [2, 3, 4, 5, 30, 31, 32, 33, 34]


def test_trimming_removes_a_pure_tone_entirely():
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(48000) / 16000)).astype(np.float32)
    assert len(preprocess.trim_long_silences(tone)) == 0


def test_sine_mel_check_value():
    sine = (0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    mel = preprocess.mel_frames(sine)
    assert mel.shape == (101, 40)
    assert abs(mel.sum() - 5096.88) < 0.05 and abs(mel.max() - 41.078) < 1e-3
    assert int(mel.mean(axis=0).argmax()) == 5
