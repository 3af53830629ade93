"""WaveRNN torch modules with RTVC's architecture and state_dict keys (``fatchord_version``).

Only the networks live here; generation loops are in :mod:`sv2tts.vocoder.generate`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import VocoderConfig


class ResBlock(nn.Module):
    """``y = BN2(conv2(relu(BN1(conv1(x))))) + x`` with 1x1 convolutions, no bias."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(dims, dims, kernel_size=1, bias=False)
        self.conv2 = nn.Conv1d(dims, dims, kernel_size=1, bias=False)
        self.batch_norm1 = nn.BatchNorm1d(dims)
        self.batch_norm2 = nn.BatchNorm1d(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.batch_norm1(self.conv1(x)))
        return self.batch_norm2(self.conv2(y)) + x


class MelResNet(nn.Module):
    """(B, mels, T + 2*pad) -> (B, res_out, T): unpadded conv_in, BN, ReLU, res blocks, conv_out."""

    def __init__(self, cfg: VocoderConfig) -> None:
        super().__init__()
        k = 2 * cfg.pad + 1
        self.conv_in = nn.Conv1d(cfg.num_mels, cfg.compute_dims, kernel_size=k, bias=False)
        self.batch_norm = nn.BatchNorm1d(cfg.compute_dims)
        self.layers = nn.ModuleList([ResBlock(cfg.compute_dims) for _ in range(cfg.res_blocks)])
        self.conv_out = nn.Conv1d(cfg.compute_dims, cfg.res_out_dims, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.batch_norm(self.conv_in(x)))
        for layer in self.layers:
            x = layer(x)
        return self.conv_out(x)


class Stretch2d(nn.Module):
    """Nearest-neighbour stretch of the last dim by ``scale`` (each column repeated)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(self.scale, dim=-1)


class UpsampleNetwork(nn.Module):
    """Mel (B, mels, T + 2*pad) -> (mel features (B, hop*T, mels), aux (B, hop*T, res_out))."""

    def __init__(self, cfg: VocoderConfig) -> None:
        super().__init__()
        total_scale = 1
        for s in cfg.upsample_factors:
            total_scale *= s
        self.indent = cfg.pad * total_scale
        self.resnet = MelResNet(cfg)
        self.resnet_stretch = Stretch2d(total_scale)
        layers: list[nn.Module] = []
        for s in cfg.upsample_factors:
            conv = nn.Conv2d(1, 1, kernel_size=(1, 2 * s + 1), padding=(0, s), bias=False)
            with torch.no_grad():
                conv.weight.fill_(1.0 / (2 * s + 1))
            layers += [Stretch2d(s), conv]
        self.up_layers = nn.ModuleList(layers)  # state_dict keys up_layers.1/.3/.5

    def forward(self, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        aux = self.resnet_stretch(self.resnet(m))
        m = m.unsqueeze(1)
        for f in self.up_layers:
            m = f(m)
        m = m.squeeze(1)[:, :, self.indent:m.shape[-1] - self.indent]
        return m.transpose(1, 2), aux.transpose(1, 2)


class WaveRNN(nn.Module):
    """RTVC's WaveRNN (RAW mode). State_dict: 148 keys for the default config."""

    def __init__(self, cfg: VocoderConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or VocoderConfig()
        self.cfg = cfg
        r, fc, a = cfg.rnn_dims, cfg.fc_dims, cfg.aux_dims
        self.upsample = UpsampleNetwork(cfg)
        self.I = nn.Linear(cfg.num_mels + a + 1, r)
        self.rnn1 = nn.GRU(r, r, batch_first=True)
        self.rnn2 = nn.GRU(r + a, r, batch_first=True)
        self.fc1 = nn.Linear(r + a, fc)
        self.fc2 = nn.Linear(fc + a, fc)
        self.fc3 = nn.Linear(fc, cfg.n_classes)
        self.step = nn.Parameter(torch.zeros(1, dtype=torch.long), requires_grad=False)

    def split_aux(self, aux: torch.Tensor) -> list[torch.Tensor]:
        """aux (..., 4*aux_dims) -> [a1, a2, a3, a4], each (..., aux_dims)."""
        d = self.cfg.aux_dims
        return [aux[..., d * i:d * (i + 1)] for i in range(4)]

    def forward(self, x: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits.

        x: (B, L) float32 previous samples in [-1, 1]; mels: (B, mels, L/hop + 2*pad) (mel / 4).
        Returns logits (B, L, n_classes).
        """
        m, aux = self.upsample(mels)
        return self.forward_upsampled(x, m, aux)

    def forward_upsampled(self, x: torch.Tensor, m: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits from upsampled features.

        x: (B, L) previous samples; m: (B, L, mels); aux: (B, L, res_out). Returns (B, L, n_classes).
        """
        b = x.shape[0]
        h1 = x.new_zeros(1, b, self.cfg.rnn_dims)
        h2 = x.new_zeros(1, b, self.cfg.rnn_dims)
        a1, a2, a3, a4 = self.split_aux(aux)
        y = self.I(torch.cat([x.unsqueeze(-1), m, a1], dim=2))
        res = y
        y, _ = self.rnn1(y, h1)
        y = y + res
        res = y
        y, _ = self.rnn2(torch.cat([y, a2], dim=2), h2)
        y = y + res
        y = F.relu(self.fc1(torch.cat([y, a3], dim=2)))
        y = F.relu(self.fc2(torch.cat([y, a4], dim=2)))
        return self.fc3(y)
