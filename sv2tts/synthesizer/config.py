"""Frozen configuration of the synthesizer stage: RTVC's hparams (synthesizer/hparams.py).

`SynthesizerConfig` holds the Tacotron sizes and inference settings. The mel format it
produces is `core.spectrogram.MelConfig`, shared with the vocoders.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class SynthesizerConfig:
    """Tacotron sizes (RTVC's defaults) and inference settings.

    `r` is the reduction factor (frames per decoder step); RTVC reads it from the checkpoint's
    `decoder.r` buffer (2 for the published model), a fresh model has 1.
    """

    num_chars: int = 66
    embed_dims: int = 512
    encoder_dims: int = 256
    decoder_dims: int = 128
    postnet_dims: int = 512
    encoder_K: int = 5
    lstm_dims: int = 1024
    postnet_K: int = 5
    num_highways: int = 4
    dropout: float = 0.5
    zoneout: float = 0.1  # training only: probability that a residual LSTM unit keeps its h
    speaker_embedding_size: int = 256
    n_mels: int = 80
    max_r: int = 20
    r: int = 2
    stop_threshold: float = -3.4  # trailing frames whose every bin is below this are trimmed
    stop_probability: float = 0.5  # a decoder step "stops" when sigmoid(stop) > this
    min_stop_frames: int = 10  # RTVC stops only once t (frames) > 10
    max_frames: int = 2000  # RTVC's `steps` argument of generate (frames)
    batch_size: int = 16  # RTVC's synthesis_batch_size
    lsa_filters: int = 32
    lsa_kernel: int = 31

    def with_(self, **changes) -> "SynthesizerConfig":
        """A copy with some fields changed."""
        return replace(self, **changes)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> "SynthesizerConfig":
        """Read the model sizes off an RTVC Tacotron state_dict's tensor shapes.

        Raises KeyError when a tensor needed to infer a size is missing (the caller turns
        that into a CheckpointError naming the file).
        """
        emb = state["encoder.embedding.weight"]
        encoder_dims = int(state["encoder.pre_net.fc1.weight"].shape[0])
        n_mels = int(state["post_proj.weight"].shape[0])
        r = state.get("decoder.r")
        return cls(
            num_chars=int(emb.shape[0]),
            embed_dims=int(emb.shape[1]),
            encoder_dims=encoder_dims,
            decoder_dims=int(state["decoder.attn_net.W.weight"].shape[0]),
            postnet_dims=int(state["postnet.conv1d_bank.0.conv.weight"].shape[0]),
            encoder_K=_count(state, r"encoder\.cbhg\.conv1d_bank\.(\d+)\.conv\.weight"),
            lstm_dims=int(state["decoder.res_rnn1.weight_hh"].shape[1]),
            postnet_K=_count(state, r"postnet\.conv1d_bank\.(\d+)\.conv\.weight"),
            num_highways=_count(state, r"encoder\.cbhg\.highways\.(\d+)\.W1\.weight"),
            speaker_embedding_size=int(state["encoder_proj.weight"].shape[1]) - encoder_dims,
            n_mels=n_mels,
            max_r=int(state["decoder.mel_proj.weight"].shape[0]) // n_mels,
            r=int(r.item()) if r is not None and r.numel() == 1 else cls.r,
            lsa_filters=int(state["decoder.attn_net.conv.weight"].shape[0]),
            lsa_kernel=int(state["decoder.attn_net.conv.weight"].shape[2]),
        )


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    found = [int(m.group(1)) for k in state if (m := rx.fullmatch(k))]
    return max(found) + 1 if found else 0
