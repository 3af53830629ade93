"""GE2E speaker encoder network: 3-layer LSTM (40 -> 256) + Linear + ReLU + L2 norm."""
from __future__ import annotations

import torch
from torch import nn

from .config import EncoderConfig


class SpeakerEncoderNet(nn.Module):
    """RTVC's ``SpeakerEncoder`` (same state_dict keys); inference only."""

    def __init__(self, config: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.lstm = nn.LSTM(config.n_mels, config.hidden_size, config.num_layers, batch_first=True)
        self.linear = nn.Linear(config.hidden_size, config.embedding_size)
        self.relu = nn.ReLU()
        # Used only by the GE2E training loss; kept so RTVC checkpoints load strictly.
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: (B, T, 40) power mel -> (B, 256) embeddings, each L2 norm ~1 (eps 1e-5)."""
        _, (hidden, _) = self.lstm(frames)
        embeds = self.relu(self.linear(hidden[-1]))
        return embeds / (torch.norm(embeds, dim=1, keepdim=True) + 1e-5)
