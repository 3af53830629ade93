"""Shared fixtures: where the golden data lives (RTVC's own outputs, ../shared/golden)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]


def _golden_dir() -> Path | None:
    env = os.environ.get("SV2TTS_GOLDEN")
    candidates = [Path(env)] if env else []
    candidates += [_REPO.parent / "shared" / "golden", _REPO / ".." / "shared" / "golden"]
    for c in candidates:
        if (c / "README.md").exists():
            return c.resolve()
    return None


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
