"""Tacotron training as RTVC's ``synthesizer/train.py`` does it, one step at a time.

- `load_tacotron` / `new_tacotron`: a model to train (RTVC checkpoint, or RTVC's init).
- `make_optimizer`, `schedule_stage`, `apply_stage`: Adam over ``model.parameters()``; the
  stage of RTVC's tts_schedule for the model's step sets r and the lr of every group.
- `synthesizer_loss`: mel MSE + L1 (decoder), MSE (postnet), stop BCE; means over the whole
  padded tensors (padding frames are targets, as in RTVC).
- `train_step`: step buffer + 1, teacher-forced train-mode forward (pre-net dropout 0.5,
  zoneout 0.1, batch-statistics BatchNorm), loss, backward, clip the total gradient norm to
  1, Adam step.
- `gta_mels`: ground-truth-aligned mels for vocoder training (RTVC's vocoder_preprocess.py).

Randomness: every mask of a forward is drawn from one ``torch.Generator`` in RTVC's order
(encoder pre-net 2 masks, then per decoder step pre-net 2 masks and 2 zoneout masks), so a
CPU generator seeded with s replays RTVC's forward after ``torch.manual_seed(s)``.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import InputError
from ..core.runtime import make_generator, resolve_device
from ..synthesizer.api import tacotron_from_state
from ..synthesizer.config import SynthesizerConfig
from ..synthesizer.model import HighwayNetwork, Tacotron
from .checkpoint import load_optimizer_state, read_checkpoint, save_checkpoint
from .config import Stage, SynthesizerTrainConfig
from .data import SynthesizerBatch, SynthesizerDataset, collate_synthesizer
from .files import save_npy, write_text

log = logging.getLogger(__name__)

MODEL_NAME = "synthesizer"


# ---------------------------------------------------------------------------------- models
def new_tacotron(cfg: SynthesizerConfig | None = None, seed: int | None = None) -> Tacotron:
    """A new Tacotron as RTVC builds one: PyTorch's default init, Highway W1 biases 0, then
    xavier_uniform_ on every parameter with more than one dimension; step 0, r = 1.

    seed: seeds torch's global generator first (RTVC's init draws from it); None leaves it.
    """
    if seed is not None:
        torch.manual_seed(seed)
    model = Tacotron((cfg or SynthesizerConfig()).with_(r=1))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, HighwayNetwork):
                module.W1.bias.zero_()
        for p in model.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
    return model


def load_tacotron(path: str | os.PathLike, device: str | torch.device = "cpu"
                  ) -> tuple[Tacotron, dict]:
    """An RTVC synthesizer.pt as a trainable Tacotron (sizes and r read off the file, checked as
    `Synthesizer.load` checks them) and the checkpoint dict (for `load_optimizer_state`; on the
    CPU the model holds its model_state tensors). CheckpointError for another model's file."""
    ckpt = read_checkpoint(path, MODEL_NAME)
    return tacotron_from_state(ckpt["model_state"], path, resolve_device(device)), ckpt


def make_optimizer(model: nn.Module, lr: float = 1e-3,
                   cfg: SynthesizerTrainConfig = SynthesizerTrainConfig()) -> torch.optim.Adam:
    """RTVC's optimizer: Adam over ``model.parameters()`` (betas (0.9, 0.999), eps 1e-8)."""
    return torch.optim.Adam(model.parameters(), lr=lr, betas=cfg.adam_betas, eps=cfg.adam_eps)


def model_step(model: Tacotron) -> int:
    """The model's training step (its ``step`` buffer: forwards done in training)."""
    return int(model.step.reshape(-1)[0])


def schedule_stage(step: int, schedule: Sequence[Stage]) -> Stage | None:
    """The stage RTVC trains in at ``step``: the first whose max step is above it (None when
    the schedule is complete)."""
    for stage in schedule:
        if step < stage[2]:
            return stage
    return None


def apply_stage(model: Tacotron, optimizer: torch.optim.Optimizer, stage: Stage) -> None:
    """Set the stage's r (the ``decoder.r`` buffer) and its lr on every param group (RTVC:
    the session's lr overrides the one stored in the checkpoint)."""
    r, lr = int(stage[0]), float(stage[1])
    if not 1 <= r <= model.cfg.max_r:
        raise InputError(f"r: expected 1..{model.cfg.max_r}, got {r}")
    model.decoder.r.fill_(r)
    for group in optimizer.param_groups:
        group["lr"] = lr


# ---------------------------------------------------------------------------------- a step
@dataclass(frozen=True)
class SynthesizerOutputs:
    """A teacher-forced forward: m1 decoder mels (B, 80, T_pad), m2 postnet mels (B, 80, T_pad),
    attention (B, T_pad / r, N), stop probabilities (B, T_pad)."""

    m1: torch.Tensor
    m2: torch.Tensor
    attention: torch.Tensor
    stop: torch.Tensor


@dataclass(frozen=True)
class SynthesizerLosses:
    """RTVC's loss terms (scalar tensors): total = mse_m1 + l1_m1 + m2 + stop."""

    mse_m1: torch.Tensor
    l1_m1: torch.Tensor
    m2: torch.Tensor
    stop: torch.Tensor

    @property
    def m1(self) -> torch.Tensor:
        return self.mse_m1 + self.l1_m1

    @property
    def total(self) -> torch.Tensor:
        return self.m1 + self.m2 + self.stop


def synthesizer_loss(out: SynthesizerOutputs, batch: SynthesizerBatch) -> SynthesizerLosses:
    """RTVC's losses, each the mean over the whole padded tensor (no mask)."""
    return SynthesizerLosses(F.mse_loss(out.m1, batch.mels), F.l1_loss(out.m1, batch.mels),
                             F.mse_loss(out.m2, batch.mels), F.binary_cross_entropy(out.stop, batch.stop))


def forward(model: Tacotron, batch: SynthesizerBatch,
            generator: torch.Generator | None = None) -> SynthesizerOutputs:
    """RTVC's training forward: ``step`` + 1, then the teacher-forced forward in the model's
    current mode (train mode for training). generator None: fresh entropy."""
    if generator is None:
        generator = make_generator(None, batch.mels.device)
    with torch.no_grad():
        model.step += 1
    return SynthesizerOutputs(*model(batch.chars, batch.mels, batch.embeds, generator))


@dataclass(frozen=True)
class StepResult:
    """One training step: the step reached, loss terms (floats), the total gradient norm
    before clipping, and the forward's outputs (detached) when asked for."""

    step: int
    loss: float
    mse_m1: float
    l1_m1: float
    m2_loss: float
    stop_loss: float
    grad_norm: float
    outputs: SynthesizerOutputs | None = None


def train_step(model: Tacotron, optimizer: torch.optim.Optimizer, batch: SynthesizerBatch, *,
               generator: torch.Generator | None = None, clip_grad_norm: float | None = 1.0,
               keep_outputs: bool = False,
               inspect_gradients: Callable[[Tacotron], None] | None = None) -> StepResult:
    """One RTVC training step on ``batch`` (on the model's device): train mode, forward, loss,
    zero_grad, backward, clip the total L2 gradient norm to ``clip_grad_norm`` (grads x
    min(1, max / (norm + 1e-6)); a non-finite norm is logged, as RTVC prints it), Adam step.

    inspect_gradients(model) is called after backward, before clipping (for tests and logs).
    """
    model.train()
    out = forward(model, batch, generator)
    losses = synthesizer_loss(out, batch)
    loss = losses.total
    optimizer.zero_grad()
    loss.backward()
    if inspect_gradients is not None:
        inspect_gradients(model)
    if clip_grad_norm is not None:
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm))
    else:
        norm = float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(p.grad) for p in model.parameters() if p.grad is not None])))
    if not math.isfinite(norm):
        log.warning("step %d: gradient norm is %s", model_step(model), norm)
    optimizer.step()
    kept = None
    if keep_outputs:
        kept = SynthesizerOutputs(*(t.detach() for t in (out.m1, out.m2, out.attention, out.stop)))
    return StepResult(model_step(model), loss.item(), losses.mse_m1.item(), losses.l1_m1.item(),
                      losses.m2.item(), losses.stop.item(), norm, kept)


@torch.no_grad()
def evaluate(model: Tacotron, batch: SynthesizerBatch) -> float:
    """Validation loss of a batch: RTVC's loss on the eval-mode teacher-forced forward (no
    dropout, no zoneout, running BatchNorm statistics); the model is not changed."""
    was_training = model.training
    model.eval()
    try:
        out = SynthesizerOutputs(*model(batch.chars, batch.mels, batch.embeds, None))
        return float(synthesizer_loss(out, batch).total)
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------- checkpoints
def save_synthesizer(path: str | os.PathLike, model: Tacotron,
                     optimizer: torch.optim.Optimizer | None = None) -> Path:
    """RTVC's ``model.save(path, optimizer)``, atomically: model_state (with ``step`` and
    ``decoder.r``) and the Adam state; RTVC's Tacotron.load and sv2tts.Synthesizer.load read it."""
    return save_checkpoint(path, model, optimizer)


def backup_name(step: int) -> str:
    """RTVC's backup file name at ``step``: synthesizer_<step // 1000, 6 digits>.pt."""
    return f"synthesizer_{step // 1000:06d}.pt"


def open_for_training(path: str | os.PathLike, device: str | torch.device = "cpu",
                      cfg: SynthesizerTrainConfig = SynthesizerTrainConfig()
                      ) -> tuple[Tacotron, torch.optim.Adam, Stage | None]:
    """RTVC's start of a session from a checkpoint: model + Adam (state resumed when the file
    has one), in train mode, with the schedule stage for its step applied (None: complete)."""
    model, ckpt = load_tacotron(path, device)
    optimizer = make_optimizer(model, cfg=cfg)
    load_optimizer_state(optimizer, ckpt, path)
    stage = schedule_stage(model_step(model), cfg.schedule)
    if stage is not None:
        apply_stage(model, optimizer, stage)
    return model.train(), optimizer, stage


# ------------------------------------------------------------------------------- GTA mels
@torch.no_grad()
def gta_mels(model: Tacotron, batch: SynthesizerBatch) -> list[np.ndarray]:
    """Ground-truth-aligned mels (RTVC's vocoder_preprocess.py): the eval-mode teacher-forced
    postnet output of each item, cut to its length -> list of (T_i, 80) float32 (time-major, as
    saved in mels_gta/). RTVC builds this model with dropout 0: no masks are drawn here.
    As in RTVC the result depends on the batch (padding reaches attention and the GRUs): RTVC
    uses batches of 16 (``gta_batch_size``) in train.txt order, with r from the checkpoint."""
    was_training = model.training
    model.eval()
    try:
        _, m2, _, _ = model(batch.chars, batch.mels, batch.embeds, None)
    finally:
        model.train(was_training)
    return [m2[j, :, :int(n)].T.cpu().numpy().astype(np.float32)
            for j, n in enumerate(batch.mel_lengths)]


def write_gta_mels(syn_dir: str | os.PathLike, model: Tacotron, out_dir: str | os.PathLike, *,
                   batch_size: int = SynthesizerTrainConfig.gta_batch_size) -> int:
    """RTVC's vocoder_preprocess.py on a preprocessed folder: ``out_dir/mels_gta/mel-<name>.npy``
    (T, 80) float32 for every train.txt row, batches of ``batch_size`` in train.txt order on
    the model's device, and ``out_dir/synthesized.txt`` (the train.txt lines). Returns the count."""
    syn_dir, out = Path(syn_dir), Path(out_dir)
    dataset = SynthesizerDataset.from_folder(syn_dir)
    device = next(model.parameters()).device
    for start in range(0, len(dataset), batch_size):
        indices = range(start, min(start + batch_size, len(dataset)))
        batch = collate_synthesizer([dataset[i] for i in indices], model.r).to(device)
        for i, mel in zip(indices, gta_mels(model, batch)):
            save_npy(out / "mels_gta" / dataset.rows[i].mel_file, mel)
    write_text(out / "synthesized.txt", "".join(row.line() + "\n" for row in dataset.rows))
    log.info("%s: %d ground-truth-aligned mels", out, len(dataset))
    return len(dataset)
