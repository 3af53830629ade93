"""Encoder embeddings with the built-in weights against RTVC's golden numbers."""
import json
import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from sv2tts.encoder import Encoder, builtin_weights


@pytest.fixture(scope="module")
def encoder():
    return Encoder.load()


@pytest.fixture(scope="module")
def audio_npz(golden):
    return np.load(golden / "encoder" / "encoder_audio.npz")


@pytest.fixture(scope="module")
def extra(golden):
    return np.load(golden / "encoder" / "encoder_extra.npz")


@pytest.fixture(scope="module")
def files(golden, audio_npz):
    files = json.loads((golden / "encoder" / "encoder_index.json").read_text())["files"]
    assert files
    assert sorted(f["utt_id"] for f in files) == sorted(
        k.removesuffix("__embed") for k in audio_npz if k.endswith("__embed"))
    return files


def cases(npz, prefix, suffix):
    """The <case> parts of the keys named prefix<case>suffix, in file order."""
    found = [k[len(prefix):len(k) - len(suffix)] for k in npz if k.startswith(prefix) and k.endswith(suffix)]
    assert found, f"no {prefix}*{suffix} arrays"
    return found


def assert_same_embedding(ours, ref, name):
    cos = float(np.dot(ours, ref) / np.linalg.norm(ours) / np.linalg.norm(ref))
    diff = float(np.abs(ours - ref).max())
    assert cos >= 0.9999 and diff <= 2e-5, f"{name}: cosine {cos}, max abs diff {diff}"


def test_builtin_weights_are_the_resemblyzer_checkpoint_stripped(golden):
    manifest = json.loads((golden / "encoder" / "encoder_checkpoint_manifest.json").read_text())
    ckpt = torch.load(builtin_weights(), map_location="cpu", weights_only=True)
    assert ckpt["step"] == manifest["step"] == 1564501
    assert 5_000_000 < builtin_weights().stat().st_size < 6_500_000
    assert "sha256: 39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e" in \
        (builtin_weights().parent / "SOURCE.txt").read_text()
    assert (builtin_weights().parent / "LICENSE-resemblyzer.txt").read_text().lstrip().startswith("Apache License")


def test_file_embeddings_match_rtvc(encoder, golden, audio_npz, files):
    for f in files:
        u = f["utt_id"]
        e = encoder.embed(golden / f["file"])
        assert e.shape == (256,) and e.dtype == np.float32
        assert abs(np.linalg.norm(e) - 1) < 1e-5
        assert_same_embedding(e, audio_npz[f"{u}__embed"], u)


def test_partials_and_no_partials_match_rtvc(encoder, audio_npz, files):
    for f in files:
        u = f["utt_id"]
        e, partials, slices = encoder.embed_utterance(audio_npz[f"{u}__wav"], return_partials=True)
        assert [[s.start, s.stop] for s in slices] == audio_npz[f"{u}__partial_wave_slices"].tolist()
        np.testing.assert_allclose(partials, audio_npz[f"{u}__partial_embeds"], atol=2e-5, err_msg=u)
        assert_same_embedding(e, audio_npz[f"{u}__embed"], u)
        whole = encoder.embed_utterance(audio_npz[f"{u}__wav"], using_partials=False)
        assert_same_embedding(whole, audio_npz[f"{u}__embed_no_partials"], u + " no partials")


def test_short_wavs_use_zero_padding_like_rtvc(encoder, audio_npz, extra, files):
    for n in cases(extra, "short_", "__embed"):  # the first n samples of the first file
        wav = audio_npz[f"{files[0]['utt_id']}__wav"][:int(n)]
        e, partials, slices = encoder.embed_utterance(wav, return_partials=True)
        assert [[s.start, s.stop] for s in slices] == extra[f"short_{n}__partial_wave_slices"].tolist(), n
        np.testing.assert_allclose(partials, extra[f"short_{n}__partial_embeds"], atol=2e-5, err_msg=n)
        assert_same_embedding(e, extra[f"short_{n}__embed"], f"short {n}")


def test_zeros_and_frame_batches_match_rtvc(encoder, extra):
    for n in cases(extra, "zeros_", "__embed"):
        assert_same_embedding(encoder.embed_utterance(np.zeros(int(n))), extra[f"zeros_{n}__embed"], "zeros")
    for size in cases(extra, "frames_batch_", ""):
        np.testing.assert_allclose(encoder.embed_frames(extra[f"frames_batch_{size}"]),
                                   extra[f"embeds_batch_{size}"], atol=2e-5, err_msg=size)


def test_resampled_preprocessing_matches_rtvc(encoder, extra):
    wav = encoder.preprocess(extra["resample_in"], int(extra["resample_in_sr"]))
    ref = extra["resample_out"]
    assert wav.shape == ref.shape
    np.testing.assert_allclose(wav, ref, atol=1e-5)


def test_same_speaker_pairs_score_higher_than_different_speaker_pairs(encoder, golden, files, extra):
    embeds = np.stack([encoder.embed(golden / f["file"]) for f in files])
    sims = embeds @ embeds.T
    np.testing.assert_allclose(sims, extra["cosine_similarity"], atol=1e-4)
    speakers = [f["speaker"] for f in files]
    same, diff = [], []
    for i in range(len(files)):
        for j in range(i + 1, len(files)):
            (same if speakers[i] == speakers[j] else diff).append(
                (round(float(sims[i, j]), 4), files[i]["utt_id"], files[j]["utt_id"]))
    assert min(same)[0] > max(diff)[0], f"same-speaker {sorted(same)} vs different-speaker {sorted(diff)}"


def test_several_clips_average_to_one_voice(encoder, golden, files):
    paths = [golden / f["file"] for f in files if f["speaker"] == files[0]["speaker"]]
    assert len(paths) >= 2
    total = np.sum([encoder.embed(p) for p in paths], axis=0)
    voice = encoder.embed(paths)
    expected = total / np.linalg.norm(total)
    np.testing.assert_allclose(voice, expected, atol=1e-6)
    assert abs(np.linalg.norm(voice) - 1) < 1e-6


def test_array_with_rate_equals_file(encoder, golden, files, tmp_path):
    path = golden / files[0]["file"]
    wav, rate = sf.read(path, dtype="float32")
    np.testing.assert_array_equal(encoder.embed((wav, rate)), encoder.embed(path))
    np.testing.assert_array_equal(encoder.embed(wav, sample_rate=rate), encoder.embed(path))


def test_short_speech_warns_but_embeds(encoder, audio_npz, files, caplog):
    wav = audio_npz[f"{files[0]['utt_id']}__wav"][:12000]
    with caplog.at_level(logging.WARNING, logger="sv2tts"):
        e = encoder.embed((wav, 16000))
    assert e.shape == (256,) and np.isfinite(e).all()
    assert "will match poorly" in caplog.text


def test_encoder_is_safe_to_share_between_threads(encoder, audio_npz, files):
    from concurrent.futures import ThreadPoolExecutor

    wavs = [audio_npz[f"{f['utt_id']}__wav"] for f in files]
    expected = [encoder.embed_utterance(w) for w in wavs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(encoder.embed_utterance, wavs * 2))
    for e, ref in zip(got, expected * 2):
        np.testing.assert_allclose(e, ref, atol=1e-6)


def test_embedding_does_not_depend_on_torch_threads(encoder, example_clip):
    """The network runs on one thread whatever the caller's count (torch's products round
    differently with another count, which would reach every seeded clone's samples)."""
    before = torch.get_num_threads()
    try:
        embeds = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            embeds.append(encoder.embed(example_clip))
            assert torch.get_num_threads() == n  # the caller's count is restored
    finally:
        torch.set_num_threads(before)
    assert all(np.array_equal(embeds[0], e) for e in embeds[1:])
