"""core.dsp: emphasis, volume (the webrtcvad trimming is tested through the encoder's front end)."""
import numpy as np

from sv2tts.core.dsp import de_emphasis, normalize_volume, pre_emphasis


def test_emphasis_filters_and_roundtrip():
    x = np.array([1.0, 0.0, 0.0, 2.0])
    np.testing.assert_allclose(pre_emphasis(x, 0.5), [1.0, -0.5, 0.0, 2.0])
    np.testing.assert_allclose(de_emphasis(x, 0.5), [1.0, 0.5, 0.25, 2.125])
    y = np.random.RandomState(0).randn(1000)
    np.testing.assert_allclose(de_emphasis(pre_emphasis(y)), y, atol=1e-12)


def test_normalize_volume_is_increase_only():
    quiet = (0.001 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    loud = (0.9 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    louder = normalize_volume(quiet, -30)
    rms_db = 10 * np.log10(np.mean(louder.astype(np.float64) ** 2))
    assert abs(rms_db + 30) < 1e-3 and louder.dtype == np.float32
    assert normalize_volume(loud, -30) is loud
    zeros = np.zeros(100, np.float32)
    assert not np.isnan(normalize_volume(zeros)).any()


