"""Vocoder API: output contract, seeds, threads, progress, bad input and bad checkpoints."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import sv2tts
from sv2tts import CheckpointError, GriffinLim, InputError, vocode
from sv2tts.vocoder import Vocoder, WaveRNN

SMALL = dict(target=400, overlap=50, progress=False)  # short folds: the property does not depend on length


@pytest.fixture(scope="module")
def vocoder(golden):
    return Vocoder.load(golden / "vocoder" / "vocoder.pt", device="cpu")


@pytest.fixture(scope="module")
def mel50(golden):
    return np.load(golden / "vocoder" / "infer_waveform.npz")["batched_mel"].copy()  # (80, 50)


@pytest.fixture(scope="module")
def mel(mel50):
    return mel50[:, :12].copy()


def test_public_name():
    assert sv2tts.Vocoder is Vocoder


def test_output_contract(vocoder, mel):
    wav = vocoder.vocode(mel, seed=0, **SMALL)
    assert wav.dtype == np.float32 and wav.shape == ((mel.shape[1] - 1) * 200,)
    assert np.isfinite(wav).all() and wav[-1] == 0.0
    assert np.all(wav[:SMALL["overlap"] // 2 + 1] == 0)  # RTVC's cross-fade silences the start
    assert np.abs(wav).max() > 0.01


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "int8"])
def test_seed_reproducible(vocoder, mel, precision):
    a = vocoder.vocode(mel, seed=3, precision=precision, **SMALL)
    b = vocoder.vocode(mel, seed=3, precision=precision, **SMALL)
    c = vocoder.vocode(mel, seed=4, precision=precision, **SMALL)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_seed_none_draws_fresh(vocoder, mel):
    assert not np.array_equal(vocoder.vocode(mel, **SMALL), vocoder.vocode(mel, **SMALL))


def test_threads_share_one_vocoder(vocoder, mel):
    seeds = [0, 1, 2, 3]
    expected = [vocoder.vocode(mel, seed=s, **SMALL) for s in seeds]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda s: vocoder.vocode(mel, seed=s, **SMALL), seeds))
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


def test_unbatched_and_torch_input(vocoder, mel):
    wav = vocoder.vocode(torch.from_numpy(mel), batched=False, seed=1, progress=False)
    assert wav.shape == ((mel.shape[1] - 1) * 200,) and wav[-1] == 0.0 and wav[0] != 0.0


def test_module_function_accepts_path_or_vocoder(golden, vocoder, mel):
    a = vocode(mel, vocoder=vocoder, seed=2, **SMALL)
    b = vocode(mel, vocoder=golden / "vocoder" / "vocoder.pt", seed=2, **SMALL)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="vocoder"):
        vocode(mel, vocoder=42, **SMALL)


def test_griffin_lim_has_the_vocoder_interface(mel):
    """Same call as WaveRNN; its seed fixes the initial phases; no WaveRNN option breaks it."""
    gl = GriffinLim()
    a = gl.vocode(mel, seed=1, precision="int8", progress=False)
    assert a.dtype == np.float32 and a.shape == ((mel.shape[1] - 1) * 200,)
    np.testing.assert_array_equal(a, vocode(mel, vocoder="griffinlim", seed=1))
    assert not np.array_equal(a, gl.vocode(mel, seed=2))


def test_precision_is_chosen_at_load_and_per_call(golden, mel):
    voc = Vocoder.load(golden / "vocoder" / "vocoder.pt", precision="int8")
    assert voc.precision == "int8" and voc.engine().precision == "int8"
    assert voc.engine() is voc.engine("int8")  # built once
    np.testing.assert_array_equal(voc.vocode(mel, seed=5, **SMALL), voc.vocode(mel, seed=5, precision="int8", **SMALL))
    with pytest.raises(InputError, match="precision"):
        Vocoder.load(golden / "vocoder" / "vocoder.pt", precision="fp8")


def test_progress_bar(vocoder, mel, capsys):
    vocoder.vocode(mel, seed=0, target=400, overlap=50, progress=True)
    assert "vocoding" in capsys.readouterr().err
    vocoder.vocode(mel, seed=0, target=400, overlap=50, progress=None)  # stderr is not a terminal here
    vocoder.vocode(mel, seed=0, target=400, overlap=50, progress=False)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- short mels
def test_one_frame_mel_gives_empty_audio(vocoder):
    wav = vocoder.vocode(np.zeros((80, 1), np.float32), progress=False)
    assert wav.dtype == np.float32 and wav.shape == (0,)


@pytest.mark.parametrize("frames", [2, 5, 20])
@pytest.mark.parametrize("batched", [True, False])
def test_short_mels_where_rtvc_crashes(vocoder, mel50, frames, batched):
    wav = vocoder.vocode(mel50[:, :frames], batched=batched, seed=0, progress=False)
    assert wav.shape == ((frames - 1) * 200,) and np.isfinite(wav).all() and wav[-1] == 0.0
    if not batched:
        assert np.abs(wav[:100]).max() > 0  # the fade covers the short wave; the start is audible


def test_short_mel_reference_and_fast_agree_on_length(vocoder, mel):
    a = vocoder.vocode(mel[:, :3], batched=False, seed=0, precision="reference", progress=False)
    b = vocoder.vocode(mel[:, :3], batched=False, seed=0, progress=False)
    assert a.shape == b.shape == (400,) and a[-1] == b[-1] == 0.0


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad,match", [
    (np.zeros((50, 80), np.float32), r"looks like \(T, 80\).*\(80, T\)"),
    (np.zeros((79, 30), np.float32), r"expected shape \(80, T\)"),
    (np.zeros((1, 80, 30), np.float32), r"\(80, T\)"),
    (np.zeros(80, np.float32), r"\(80, T\)"),
    (np.zeros((80, 0), np.float32), "empty"),
    ("not a mel", "dtype"),
    (np.zeros((80, 30), complex), "dtype"),
])
def test_bad_mel_shapes(vocoder, bad, match):
    with pytest.raises(InputError, match=match):
        vocoder.vocode(bad, progress=False)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_mel(vocoder, mel, value):
    bad = mel.copy()
    bad[3, 4] = value
    with pytest.raises(InputError, match="NaN or inf"):
        vocoder.vocode(bad, progress=False)


def test_mel_far_outside_scale_warns(vocoder, mel):
    with pytest.warns(UserWarning, match="far outside RTVC's scale"):
        vocoder.vocode(mel[:, :3] * 25, seed=0, **SMALL)


def test_mel_in_scale_does_not_warn(vocoder, mel, recwarn):
    vocoder.vocode(mel[:, :3], seed=0, **SMALL)
    assert not [w for w in recwarn if "scale" in str(w.message)]


@pytest.mark.parametrize("kwargs,match", [
    (dict(precision="float16"), "precision"),
    (dict(target=0), "target"),
    (dict(overlap=-1), "overlap"),
    (dict(target=1.5), "target"),
    (dict(target=10 ** 9), "target=1000000000: expected an int from 1 to 160000"),
    (dict(seed="x"), "seed"),
])
def test_bad_arguments(vocoder, mel, kwargs, match):
    with pytest.raises(InputError, match=match):
        vocoder.vocode(mel, progress=False, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_cuda_unavailable_is_a_clear_error(golden):
    with pytest.raises(InputError, match="CUDA"):
        Vocoder.load(golden / "vocoder" / "vocoder.pt", device="cuda")


# ---------------------------------------------------------------- checkpoints
def test_other_model_checkpoint(golden):
    with pytest.raises(CheckpointError, match="not an RTVC vocoder checkpoint"):
        Vocoder.load(golden / "synthesizer" / "synthesizer_small.pt")


def test_truncated_checkpoint(golden, tmp_path):
    data = (golden / "vocoder" / "vocoder.pt").read_bytes()
    path = tmp_path / "vocoder.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="vocoder"):
        Vocoder.load(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        Vocoder.load(tmp_path / "nope.pt")


def _random_state():
    torch.manual_seed(0)
    return {k: v.clone() for k, v in WaveRNN().state_dict().items()}


def test_random_full_size_rtvc_checkpoint_loads_and_vocodes(tmp_path, mel):
    path = tmp_path / "vocoder.pt"
    torch.save({"model_state": _random_state(), "optimizer_state": {}}, path)
    voc = Vocoder.load(path, device="cpu")
    assert sum(p.numel() for p in voc.model.parameters()) == 4_480_936
    wav = voc.vocode(mel[:, :4], seed=0, **SMALL)
    assert wav.shape == (600,) and np.isfinite(wav).all()


@pytest.mark.parametrize("edit,match", [
    (lambda sd: sd.pop("fc3.bias"), "missing"),
    (lambda sd: sd.__setitem__("extra.weight", torch.zeros(1)), "unexpected"),
    (lambda sd: sd.__setitem__("fc2.weight", torch.zeros(512, 500)), "shape"),
    (lambda sd: sd.__setitem__("fc3.bias", torch.full((512,), float("nan"))), "NaN"),
])
def test_broken_checkpoints(tmp_path, edit, match):
    sd = _random_state()
    edit(sd)
    path = tmp_path / "vocoder.pt"
    torch.save({"model_state": sd, "optimizer_state": {}}, path)
    with pytest.raises(CheckpointError, match=match):
        Vocoder.load(path)


def test_fold_groups_taken_from_parts_equal_the_whole_fold():
    from sv2tts.vocoder.postprocess import Folds, fold_with_overlap

    for total in (50, 1000, 1151, 2345, 9999):
        x = np.random.RandomState(total).randn(1, total, 3).astype(np.float32)
        expected = fold_with_overlap(x, 300, 50)  # tested against RTVC in test_postprocess.py
        folds = Folds(total, 300, 50)
        parts = []
        for first in range(0, folds.count, 2):  # each group from only the samples it covers
            offset = first * folds.step
            parts.append(folds.take(x[:, offset:offset + 2 * folds.step + 50], first, min(folds.count, first + 2),
                                    offset))
        np.testing.assert_array_equal(np.concatenate(parts), expected)


def test_long_audio_is_generated_in_bounded_passes_whatever_their_size(vocoder, mel50, monkeypatch):
    """A long mel goes through the engine a few folds at a time (memory does not grow with its
    length); its groups of folds draw from their own streams, so how the groups are packed into
    passes does not change the audio."""
    import sv2tts.vocoder as voc_mod

    engine = vocoder.engine("float32")
    seen = []
    real = engine.generate
    monkeypatch.setattr(engine, "generate", lambda m, a, g, p=None: seen.append(m.shape[0]) or real(m, a, g, p))
    monkeypatch.setattr(voc_mod, "_FOLD_GROUP", 4)
    monkeypatch.setattr(voc_mod, "_BATCH_FOLDS", 8)
    wav = vocoder.vocode(mel50, seed=0, target=400, overlap=50, progress=False)
    assert seen == [8, 8, 7] and len(wav) == 49 * 200 and np.isfinite(wav).all()  # 23 folds in 6 groups
    monkeypatch.setattr(voc_mod, "_BATCH_FOLDS", 4)
    seen.clear()
    np.testing.assert_array_equal(vocoder.vocode(mel50, seed=0, target=400, overlap=50, progress=False), wav)
    assert seen == [4, 4, 4, 4, 4, 3]


def test_upsampled_parts_equal_the_whole(vocoder, mel50):
    feats, aux = vocoder._upsampled(mel50)
    for start, stop in ((0, 7), (7, 30), (30, 50), (12, 13)):
        f, a = vocoder._upsampled(mel50, start, stop)
        torch.testing.assert_close(f, feats[:, start * 200:stop * 200], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a, aux[:, start * 200:stop * 200], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "int8", "reference"])
def test_vocode_many_gives_each_item_its_audio_alone(vocoder, precision, monkeypatch):
    """Batch independence: an item's audio with its seed is the same alone, through vocode, and
    inside batches of any composition, order or pass size."""
    import sv2tts.vocoder as voc_mod

    rng = np.random.default_rng(3)
    frames = [2, 9, 30] if precision == "reference" else [2, 9, 30, 50, 17]  # 1 to 23 folds of 450 steps
    mels = [rng.uniform(-4, 0, (80, n)).astype(np.float32) for n in frames]
    seeds = [11, 12, 13, 14, 15][:len(mels)]
    alone = [vocoder.vocode(m, seed=s, precision=precision, **SMALL) for m, s in zip(mels, seeds)]
    assert [len(a) for a in alone] == [(n - 1) * 200 for n in frames]
    together = vocoder.vocode_many(mels, seeds=seeds, precision=precision, **SMALL)
    backwards = vocoder.vocode_many(mels[::-1], seeds=seeds[::-1], precision=precision, **SMALL)[::-1]
    monkeypatch.setattr(voc_mod, "_BATCH_FOLDS", 5)  # other passes, and groups of 4 folds
    monkeypatch.setattr(voc_mod, "_FOLD_GROUP", 4)
    small_passes = vocoder.vocode_many([mels[0], *mels], seeds=[seeds[-1], *seeds], precision=precision, **SMALL)[1:]
    for a, b, c in zip(alone, together, backwards):
        np.testing.assert_array_equal(b, a)
        np.testing.assert_array_equal(c, a)
    assert not np.array_equal(together[1], vocoder.vocode(mels[1], seed=99, precision=precision, **SMALL))
    for mel, s, d in zip(mels, seeds, small_passes):  # groups of 4 folds alone: the same audio
        np.testing.assert_array_equal(vocoder.vocode(mel, seed=s, precision=precision, **SMALL), d)


def test_vocode_many_checks_its_arguments(vocoder, mel):
    with pytest.raises(InputError, match="seeds: expected 2"):
        vocoder.vocode_many([mel, mel], seeds=[1])
    assert vocoder.vocode_many([]) == []


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_the_thread_count_changing_mid_generation_does_not_change_the_audio(vocoder, mel50, precision, monkeypatch):
    """The engine may move between one thread and several from chunk to chunk (a busy machine):
    every fold's numbers are computed the same way whatever the thread count."""
    import sv2tts.vocoder.engines as engines

    one = vocoder.vocode(mel50, seed=2, precision=precision, **SMALL)
    choices = []
    real = engines.ThreadChoice

    class Flipping(real):  # another thread count every other chunk
        def next(self):
            choices.append(2 if len(choices) % 2 else 1)
            return choices[-1]

    monkeypatch.setattr(engines, "ThreadChoice", Flipping)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        flipping = vocoder.vocode(mel50, seed=2, precision=precision, target=400, overlap=50, progress=False)
    finally:
        torch.set_num_threads(before)
    if vocoder.engine(precision).name == "native":
        assert set(choices) == {1, 2}
    np.testing.assert_array_equal(flipping, one)
