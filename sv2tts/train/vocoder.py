"""WaveRNN training as RTVC's ``vocoder/train.py`` does it (RAW mode, 9-bit mu-law labels).

One step: ``step`` + 1, teacher-forced logits ``model(x, mels)`` (B, seq_len, 512) in train
mode (batch-statistics BatchNorm; nothing random), cross-entropy against the next sample's
label (mean over B x seq_len), zero_grad, backward, Adam step. No gradient clipping.
Batches come from `sv2tts.train.data.collate_vocoder` (random crops).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..core.runtime import resolve_device
from ..vocoder import wavernn_from_state
from ..vocoder.model import WaveRNN
from .checkpoint import load_optimizer_state, read_checkpoint, save_checkpoint
from .config import VocoderTrainConfig
from .data import VocoderBatch


MODEL_NAME = "vocoder"


def load_wavernn(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[WaveRNN, dict]:
    """An RTVC vocoder.pt as a trainable WaveRNN (sizes read off the file) and the checkpoint
    dict. CheckpointError for another model's file."""
    ckpt = read_checkpoint(path, MODEL_NAME)
    return wavernn_from_state(ckpt["model_state"], path).to(resolve_device(device)), ckpt


def make_optimizer(model: WaveRNN, cfg: VocoderTrainConfig = VocoderTrainConfig()) -> torch.optim.Adam:
    """RTVC's optimizer: Adam over ``model.parameters()`` (the int ``step`` parameter first; it
    never gets a gradient, so never an Adam state) with lr = voc_lr."""
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def open_for_training(path: str | os.PathLike, device: str | torch.device = "cpu",
                      cfg: VocoderTrainConfig = VocoderTrainConfig()) -> tuple[WaveRNN, torch.optim.Adam]:
    """RTVC's start of a vocoder session: Adam with voc_lr, then the checkpoint's model and
    optimizer state (so a stored lr wins), in train mode."""
    model, ckpt = load_wavernn(path, device)
    optimizer = make_optimizer(model, cfg)
    load_optimizer_state(optimizer, ckpt, path)
    return model.train(), optimizer


def vocoder_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """RAW-mode loss: cross-entropy of logits (B, L, classes) against labels y (B, L), the mean
    over B x L (RTVC's ``cross_entropy(logits.transpose(1, 2)[..., None], y[..., None])``)."""
    return F.cross_entropy(logits.transpose(1, 2).unsqueeze(-1), y.unsqueeze(-1))


@dataclass(frozen=True)
class VocoderStepResult:
    """One step: the step reached, the loss, and the logits (B, L, classes) when asked for."""

    step: int
    loss: float
    logits: torch.Tensor | None = None


def train_step(model: WaveRNN, optimizer: torch.optim.Optimizer, batch: VocoderBatch, *,
               keep_logits: bool = False, inspect_gradients=None) -> VocoderStepResult:
    """One RTVC vocoder step on ``batch`` (on the model's device): train mode, ``step`` + 1,
    logits, cross-entropy, zero_grad, backward, Adam step (no clipping).
    inspect_gradients(model) is called after backward, before the update."""
    model.train()
    with torch.no_grad():
        model.step += 1
    logits = model(batch.x, batch.mels)
    loss = vocoder_loss(logits, batch.y)
    optimizer.zero_grad()
    loss.backward()
    if inspect_gradients is not None:
        inspect_gradients(model)
    optimizer.step()
    return VocoderStepResult(int(model.step.reshape(-1)[0]), loss.item(),
                             logits.detach() if keep_logits else None)


def save_vocoder(path: str | os.PathLike, model: WaveRNN, optimizer: torch.optim.Optimizer | None = None) -> Path:
    """RTVC's ``model.save(path, optimizer)``, atomically."""
    return save_checkpoint(path, model, optimizer)


def backup_name(step: int) -> str:
    """RTVC's vocoder backup name at ``step``: checkpoint_<step // 1000>k_steps.pt."""
    return f"checkpoint_{step // 1000}k_steps.pt"


@torch.no_grad()
def evaluate(model: WaveRNN, batch: VocoderBatch) -> float:
    """Validation loss of a batch: the RAW cross-entropy in eval mode (running BatchNorm
    statistics); the model (its ``step`` included) is not changed."""
    was_training = model.training
    model.eval()
    try:
        return float(vocoder_loss(model(batch.x, batch.mels), batch.y))
    finally:
        model.train(was_training)
