"""Shared fixtures: where the golden data lives (RTVC's own outputs, ../shared/golden), the
example clip and synthetic voiced audio for the tests that must not need golden data."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

_REPO = Path(__file__).resolve().parents[1]


def _golden_dir() -> Path | None:
    """$SV2TTS_GOLDEN when set (and then only it: no silent fallback), else ../shared/golden."""
    env = os.environ.get("SV2TTS_GOLDEN")
    candidates = [Path(env)] if env else [_REPO.parent / "shared" / "golden"]
    for c in candidates:
        if (c / "README.md").exists():
            return c.resolve()
    return None


@pytest.fixture(autouse=True, scope="session")
def _private_model_cache(tmp_path_factory):
    """Tests never read or write the user's real model caches ($SV2TTS_HOME, Hugging Face's)."""
    os.environ["SV2TTS_HOME"] = str(tmp_path_factory.mktemp("sv2tts_home"))
    os.environ["HF_HUB_CACHE"] = str(tmp_path_factory.mktemp("hf_hub"))  # not the user's Hugging Face cache
    for name in ("HF_ENDPOINT", "HF_HUB_OFFLINE"):
        os.environ.pop(name, None)


@pytest.fixture(scope="session")
def one_torch_thread():
    """A context manager: torch on one thread inside it, the thread count restored after (the
    train and vocoder tests' packages run in it)."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def one_thread():
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    return one_thread


@pytest.fixture(scope="session")
def golden() -> Path:
    """Path of the golden folder; a failure under CI=true when it is missing, else a skip."""
    path = _golden_dir()
    if path is None:
        msg = "golden data not found: set SV2TTS_GOLDEN or place it at ../shared/golden"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def model_files(tmp_path_factory) -> dict[str, Path]:
    """Small random-weight synthesizer.pt and vocoder.pt in RTVC's file format.

    Sizes are reduced (the loaders read sizes off the tensor shapes) so end-to-end tests run
    in seconds; the synthesizer's stop bias is raised so every sentence stops after 7
    decoder steps (14 frames) instead of running to max_frames.
    """
    import torch

    from sv2tts.synthesizer.config import SynthesizerConfig
    from sv2tts.synthesizer.model import Tacotron
    from sv2tts.vocoder.config import VocoderConfig
    from sv2tts.vocoder.model import WaveRNN

    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    taco = Tacotron(SynthesizerConfig(embed_dims=64, encoder_dims=32, decoder_dims=16,
                                      postnet_dims=32, lstm_dims=64))
    state = taco.state_dict()
    state["decoder.r"] = torch.tensor(2, dtype=torch.int32)
    state["decoder.stop_proj.bias"] = state["decoder.stop_proj.bias"] + 5.0
    torch.save({"model_state": state, "optimizer_state": {}}, folder / "synthesizer.pt")
    voc = WaveRNN(VocoderConfig(rnn_dims=32, fc_dims=32, compute_dims=16, res_out_dims=16, res_blocks=2))
    torch.save({"model_state": voc.state_dict(), "optimizer_state": {}}, folder / "vocoder.pt")
    return {"synthesizer": folder / "synthesizer.pt", "vocoder": folder / "vocoder.pt"}


@pytest.fixture(scope="session")
def example_clip() -> Path:
    """The repository's example reference: 5.06 s of real speech, 16 kHz mono FLAC."""
    return _REPO / "examples" / "reference.flac"


def voiced_like(rate: int, seconds: float = 4.0, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """Deterministic speech-like float32 audio: a gliding harmonic tone shaped by three formant
    peaks, cut into 0.18-0.3 s "syllables" with Hann envelopes, 0.6 s pauses every 4 syllables,
    and a little noise. webrtcvad takes the syllables for speech and trims the long pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t)
                                        + 0.01 * np.sin(2 * np.pi * 5.5 * t))) / rate
    wav = np.zeros(n)
    for k in range(1, int(4000 / f0)):
        gain = sum(1 / (1 + ((k * f0 - formant) / 150) ** 2) for formant in (700, 1200, 2600)) + 0.05
        wav += gain / np.sqrt(k) * np.sin(k * phase)
    envelope = np.zeros(n)
    pos, i = int(0.3 * rate), 0
    while pos < n - int(0.3 * rate):
        length = int(rng.uniform(0.18, 0.3) * rate)
        envelope[pos:pos + length] = np.hanning(length)
        pos += length + int((0.6 if i % 4 == 3 else 0.08) * rate)
        i += 1
    wav = wav * envelope + 0.002 * rng.standard_normal(n)
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


@pytest.fixture(scope="session")
def synthetic_clip(tmp_path_factory) -> Path:
    """4 s of voiced-like audio (see voiced_like), 16 kHz mono FLAC: a second "speaker"."""
    import soundfile as sf

    path = tmp_path_factory.mktemp("clips") / "synthetic.flac"
    sf.write(path, voiced_like(16000), 16000)
    return path


@pytest.fixture(scope="session")
def synthetic_clip_44k_stereo(tmp_path_factory) -> Path:
    """The same kind of audio at 44.1 kHz, stereo (right = 0.8 x left), 16-bit WAV."""
    import soundfile as sf

    wav = voiced_like(44100, seed=1)
    path = tmp_path_factory.mktemp("clips") / "synthetic_44k_stereo.wav"
    sf.write(path, np.stack([wav, 0.8 * wav], axis=1), 44100, subtype="PCM_16")
    return path
