"""WaveRNN vocoder configuration (RTVC's ``vocoder/hparams.py`` values, RAW mode)."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch

from ..core.dsp import SAMPLE_RATE


@dataclass(frozen=True)
class VocoderConfig:
    """RTVC's WaveRNN ("fatchord" version) hyperparameters.

    Sizes can be read off a state_dict with :meth:`from_state_dict`; the audio values
    (sample rate, hop, pre-emphasis, mel scale) are fixed by the synthesizer's mel format.
    """

    sample_rate: int = SAMPLE_RATE  # Hz
    hop_length: int = 200  # samples per mel frame
    num_mels: int = 80
    bits: int = 9  # RAW mode: 2**bits classes
    mu_law: bool = True
    upsample_factors: tuple[int, ...] = (5, 5, 8)  # product == hop_length
    rnn_dims: int = 512
    fc_dims: int = 512
    compute_dims: int = 128
    res_out_dims: int = 128
    res_blocks: int = 10
    pad: int = 2  # mel frames of context on each side
    mel_max_abs_value: float = 4.0  # synthesizer mels are in [-4, 4]; the vocoder sees mel / 4
    preemphasis: float = 0.97
    apply_preemphasis: bool = True
    target: int = 8000  # infer_waveform's defaults (not hparams' voc_overlap=400)
    overlap: int = 800
    fade_out_frames: int = 20  # the last 20 * hop samples are faded out linearly

    @property
    def n_classes(self) -> int:
        return 2 ** self.bits

    @property
    def aux_dims(self) -> int:
        return self.res_out_dims // 4

    @property
    def fade_out_samples(self) -> int:
        return self.fade_out_frames * self.hop_length

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> "VocoderConfig":
        """Default config with the network sizes read from an RTVC WaveRNN state_dict.

        Raises KeyError / IndexError when the state_dict lacks the tensors (callers check keys).
        """
        conv_in = state["upsample.resnet.conv_in.weight"]  # (compute, mels, 2*pad+1)
        n_blocks = len({k.split(".")[3] for k in state if k.startswith("upsample.resnet.layers.")})
        ups = []
        i = 1
        while f"upsample.up_layers.{i}.weight" in state:
            ups.append((state[f"upsample.up_layers.{i}.weight"].shape[-1] - 1) // 2)
            i += 2
        n_classes = state["fc3.weight"].shape[0]
        bits = int(round(math.log2(n_classes))) if n_classes > 0 else 0
        return replace(
            cls(),
            num_mels=int(conv_in.shape[1]),
            compute_dims=int(conv_in.shape[0]),
            pad=int((conv_in.shape[2] - 1) // 2),
            res_blocks=n_blocks,
            res_out_dims=int(state["upsample.resnet.conv_out.weight"].shape[0]),
            upsample_factors=tuple(ups),
            rnn_dims=int(state["rnn1.weight_hh_l0"].shape[1]),
            fc_dims=int(state["fc1.weight"].shape[0]),
            bits=bits,
        )
