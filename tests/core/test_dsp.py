"""core.dsp: emphasis, volume (the webrtcvad trimming is tested through the encoder's front end)."""
import numpy as np
import pytest

from sv2tts.core.dsp import de_emphasis, dilate, normalize_volume, pre_emphasis


def test_emphasis_filters_and_roundtrip():
    x = np.array([1.0, 0.0, 0.0, 2.0])
    np.testing.assert_allclose(pre_emphasis(x, 0.5), [1.0, -0.5, 0.0, 2.0])
    np.testing.assert_allclose(de_emphasis(x, 0.5), [1.0, 0.5, 0.25, 2.125])
    y = np.random.RandomState(0).randn(1000)
    np.testing.assert_allclose(de_emphasis(pre_emphasis(y)), y, atol=1e-12)


@pytest.mark.parametrize("n", [0, 1, 255, 256, 257, 48_000])
def test_emphasis_equals_scipy_lfilter(n):
    """RTVC filters with scipy's lfilter; ours (no scipy.signal import, 0.5 s) gives its numbers."""
    from scipy.signal import lfilter

    x = np.random.RandomState(n).randn(n) * 0.3
    assert np.array_equal(pre_emphasis(x), lfilter([1.0, -0.97], [1.0], x) if n else x)
    if n:
        np.testing.assert_allclose(de_emphasis(x), lfilter([1.0], [1.0, -0.97], x), rtol=0, atol=1e-13)
    assert de_emphasis(x).dtype == np.float64 and de_emphasis(x).shape == (n,)


@pytest.mark.parametrize("width", [1, 2, 4, 7])
def test_dilate_equals_scipy_binary_dilation(width):
    from scipy.ndimage import binary_dilation

    mask = np.random.RandomState(width).rand(300) < 0.08
    mask[0] = mask[-1] = True  # the ends
    assert np.array_equal(dilate(mask, width), binary_dilation(mask, np.ones(width)))
    one = np.zeros(9, dtype=bool)
    one[4] = True
    assert np.flatnonzero(dilate(one, width)).tolist() == list(range(4 - width // 2, 4 + width - width // 2))


def test_normalize_volume_is_increase_only():
    quiet = (0.001 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    loud = (0.9 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    louder = normalize_volume(quiet, -30)
    rms_db = 10 * np.log10(np.mean(louder.astype(np.float64) ** 2))
    assert abs(rms_db + 30) < 1e-3 and louder.dtype == np.float32
    assert normalize_volume(loud, -30) is loud
    zeros = np.zeros(100, np.float32)
    assert not np.isnan(normalize_volume(zeros)).any()


