"""Fold / cross-fade, mu-law and emphasis helpers against RTVC's golden outputs (atol 1e-12)."""
import numpy as np
import pytest

from sv2tts.core.dsp import de_emphasis, pre_emphasis
from sv2tts.vocoder import postprocess as pp


@pytest.fixture(scope="module")
def fold(golden):
    return np.load(golden / "vocoder" / "fold.npz")


@pytest.fixture(scope="module")
def mulaw(golden):
    return np.load(golden / "vocoder" / "mulaw.npz")


@pytest.fixture(scope="module")
def fold_cases(fold):
    """The <i> of every case<i>_x array (as many as n_cases says)."""
    found = [k.removeprefix("case").removesuffix("_x") for k in fold if k.startswith("case") and k.endswith("_x")]
    assert found and len(found) == int(fold["n_cases"])
    return found


def test_fold_with_overlap_exact(fold, fold_cases):
    for i in fold_cases:
        t, o = int(fold[f"case{i}_target"]), int(fold[f"case{i}_overlap"])
        out = pp.fold_with_overlap(fold[f"case{i}_x"], t, o)
        assert out.shape == fold[f"case{i}_folded"].shape, i
        np.testing.assert_array_equal(out, fold[f"case{i}_folded"])


def test_xfade_and_unfold(fold, fold_cases):
    for i in fold_cases:
        t, o = int(fold[f"case{i}_target"]), int(fold[f"case{i}_overlap"])
        y = fold[f"case{i}_y"].copy()
        out = pp.xfade_and_unfold(y, t, o)
        np.testing.assert_array_equal(y, fold[f"case{i}_y"])  # input untouched (RTVC edits in place)
        np.testing.assert_allclose(out, fold[f"case{i}_unfolded"], rtol=0, atol=1e-12)


def test_xfade_spec_example():
    out = pp.xfade_and_unfold(np.ones((3, 300)), 200, 50)
    assert out.shape == (800,)
    assert np.all(out[:26] == 0)
    assert out[26] == pytest.approx(0.204, abs=1e-3) and out[27] == pytest.approx(0.289, abs=1e-3)


def test_fold_shorter_than_overlap_gives_one_fold():
    x = np.arange(30, dtype=np.float32).reshape(1, 30, 1)
    out = pp.fold_with_overlap(x, 8, 40)
    assert out.shape == (1, 88, 1)
    np.testing.assert_array_equal(out[0, :30, 0], x[0, :, 0])
    assert np.all(out[0, 30:] == 0)


def test_mu_law_helpers(mulaw):
    mu, bits = int(mulaw["mu"]), int(mulaw["bits"])
    x, labels = mulaw["x"], mulaw["labels"]
    tol = dict(rtol=0, atol=1e-12)
    np.testing.assert_allclose(pp.encode_mu_law(x, mu), mulaw["encode_mu_law"], **tol)
    np.testing.assert_allclose(pp.decode_mu_law(labels, mu, True), mulaw["decode_mu_law_from_labels"], **tol)
    np.testing.assert_allclose(pp.decode_mu_law(x, mu, False), mulaw["decode_mu_law_float"], **tol)
    np.testing.assert_allclose(pp.label_2_float(labels, bits), mulaw["label_2_float"], **tol)
    np.testing.assert_allclose(pp.float_2_label(x, bits), mulaw["float_2_label"], **tol)
    np.testing.assert_allclose(pre_emphasis(mulaw["emph_in"]), mulaw["pre_emphasis"], **tol)
    np.testing.assert_allclose(de_emphasis(mulaw["emph_in"]), mulaw["de_emphasis"], **tol)


def test_labels_to_samples_uses_float32_formula():
    k = np.arange(512)
    s = pp.labels_to_samples(k, 9)
    assert s.dtype == np.float64 and s[0] == -1.0 and s[-1] == 1.0
    expect = (np.float32(2) * k.astype(np.float32) / np.float32(511) - np.float32(1)).astype(np.float64)
    np.testing.assert_array_equal(s, expect)


def test_postprocess_short_wave_fades_whole_length():
    samples = np.full((1, 1000), 0.5)
    y = pp.to_waveform(samples, batched=False, target=8000, overlap=800, wave_len=600)
    assert y.shape == (600,) and y[-1] == 0.0
    ref = de_emphasis(pp.decode_mu_law(np.full(1000, 0.5), 512, False))[:600] * np.linspace(1, 0, 600)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)


def test_demo_cli_output_postprocessing_matches_rtvc(golden):
    """RTVC demo_cli's last step (pad 1 s, preprocess_wav) on its vocoded wave: golden README's
    encoder rule, exact length (binary VAD decisions) and atol 1e-6."""
    from sv2tts.pipeline import postprocess_output  # local: the function may move

    iw = np.load(golden / "vocoder" / "infer_waveform.npz")
    out = postprocess_output(iw["batched_wav"])
    expected = iw["demo_cli_postprocessed_wav"]
    assert out.dtype == np.float32 and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
