"""Full-size random-weight RTVC checkpoints whose synthesizer stops after a chosen length.

A random Tacotron never predicts "stop", and a raised stop bias alone does not fix it: the stop
logit sits at -0.045 +- 0.002 (pre-net dropout noise) with a mean that moves as much with text
and seed, so any bias gives 14 frames for some requests and 2000 (25 s) for others. So the
decoder gets a clock instead: unit CLOCK of res_rnn2 has constant gates (its inputs weigh 0;
i = f = o = 1, g = RATE) and outputs tanh(RATE * step), and the stop projection reads only it,
so every synthesis pass stops after ``steps`` decoder steps (2 mel frames each, 12.5 ms per
frame), like a real model on a sentence of that length. Every other weight is torch seed 0's.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from sv2tts.synthesizer.config import SynthesizerConfig
from sv2tts.synthesizer.model import Tacotron
from sv2tts.vocoder.config import VocoderConfig
from sv2tts.vocoder.model import WaveRNN

RATE, CLOCK = 0.005, 0
TEN_WORDS = 135  # decoder steps = 270 frames = 3.4 s, a real model's length for a 10-word sentence


def write_models(folder: Path, steps: int = TEN_WORDS) -> dict[str, Path]:
    """synthesizer.pt (stopping after ``steps`` steps) and vocoder.pt in ``folder``."""
    torch.manual_seed(0)
    state = Tacotron(SynthesizerConfig()).state_dict()
    h = state["decoder.res_rnn2.weight_hh"].shape[1]
    rows = [CLOCK + k * h for k in range(4)]  # the unit's gates i, f, g, o
    for cell in ("res_rnn1", "res_rnn2"):  # res_rnn1's unit: all 0 -> c = 0, h = 0
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            state[f"decoder.{cell}.{name}"][rows] = 0.0
    state["decoder.res_rnn2.bias_ih"][rows] = torch.tensor([20.0, 20.0, math.atanh(RATE), 20.0])
    state["decoder.rnn_input.weight"][CLOCK], state["decoder.rnn_input.bias"][CLOCK] = 0.0, 0.0
    gain = 1000.0  # stop logit = gain * (tanh(RATE * step) - tanh(RATE * (steps - 0.5)))
    state["decoder.stop_proj.weight"].zero_()
    state["decoder.stop_proj.weight"][0, CLOCK] = gain
    state["decoder.stop_proj.bias"].fill_(-gain * math.tanh(RATE * (steps - 0.5)))
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state": state, "optimizer_state": {}}, folder / "synthesizer.pt")
    torch.save({"model_state": WaveRNN(VocoderConfig()).state_dict(), "optimizer_state": {}}, folder / "vocoder.pt")
    return {"synthesizer": folder / "synthesizer.pt", "vocoder": folder / "vocoder.pt"}
