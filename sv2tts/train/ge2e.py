"""GE2E speaker-encoder training as RTVC's ``encoder/train.py`` and ``encoder/model.py`` do it.

- `similarity_matrix`: S[j, i, k] = w * cos(e_ji, c_k) + b with inclusive centroids c_k for
  k != j and the exclusive centroid of utterance (j, i) for k == j.
- `ge2e_loss`: mean cross-entropy of S as (N*M, N) rows against their speaker.
- `equal_error_rate`: where the ROC of S (one-hot truth) crosses FNR = FPR.
- `gradient_ops`: w and b gradients x 0.01, then the total norm clipped to 3.
- `train_step`: forward, loss, EER, backward, gradient_ops, Adam step.
- `RandomCycler`, `SpeakerSampler`: RTVC's batch sampling (utterances per speaker from a
  cycler over Python's random, 160-frame crops from numpy's RandomState).

Shapes: N speakers, M utterances per speaker, D = 256 embedding size, T mel frames.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from ..encoder.model import SpeakerEncoderNet
from .config import EncoderTrainConfig

T = TypeVar("T")


# ---------------------------------------------------------------------------------- loss
def similarity_matrix(embeds: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """embeds (N, M, D), unit-norm -> scaled cosine similarities S (N, M, N).

    Centroids are divided by (norm + 1e-5); the exclusive centroid of (j, i) is the mean of
    speaker j's other M - 1 utterances.
    """
    n_speakers, n_utts = embeds.shape[:2]
    incl = embeds.mean(dim=1)  # (N, D)
    incl = incl / (torch.linalg.vector_norm(incl, dim=1, keepdim=True) + 1e-5)
    excl = (embeds.sum(dim=1, keepdim=True) - embeds) / (n_utts - 1)  # (N, M, D)
    excl = excl / (torch.linalg.vector_norm(excl, dim=2, keepdim=True) + 1e-5)
    cross = torch.einsum("jid,kd->jik", embeds, incl)  # every (utterance, speaker) pair
    own = (embeds * excl).sum(dim=2)  # (N, M): each utterance against its exclusive centroid
    same = torch.eye(n_speakers, dtype=torch.bool, device=embeds.device).unsqueeze(1)  # (N, 1, N)
    sim = torch.where(same, own.unsqueeze(2), cross)
    return sim * weight + bias


def ge2e_loss(embeds: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """GE2E softmax loss of embeds (N, M, D): (scalar loss, similarity matrix (N, M, N))."""
    n_speakers, n_utts = embeds.shape[:2]
    sim = similarity_matrix(embeds, weight, bias)
    target = torch.arange(n_speakers, device=embeds.device).repeat_interleave(n_utts)
    return F.cross_entropy(sim.reshape(n_speakers * n_utts, n_speakers), target), sim


def roc_curve(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC points (fpr, tpr) float64, from (0, 0), one per distinct score (highest first)."""
    truth, scores = np.ravel(truth), np.ravel(scores)
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], truth[order].astype(np.float64)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(t)[last]
    fps = (last + 1) - tps
    return np.r_[0.0, fps] / fps[-1], np.r_[0.0, tps] / tps[-1]


def equal_error_rate(sim: np.ndarray | torch.Tensor) -> float:
    """EER of a similarity matrix (N, M, N): the false-positive rate where the ROC (one-hot
    truth: utterance (j, i) belongs to speaker j) meets FNR = FPR, i.e. tpr = 1 - fpr on the
    piecewise-linear curve (RTVC: sklearn's roc_curve, then brentq on interp1d)."""
    if isinstance(sim, torch.Tensor):
        sim = sim.detach().cpu().numpy()
    n_speakers, n_utts = sim.shape[:2]
    truth = np.repeat(np.eye(n_speakers), n_utts, axis=0)  # (N*M, N)
    fpr, tpr = roc_curve(truth, sim.reshape(n_speakers * n_utts, n_speakers))
    h = fpr + tpr - 1  # strictly increasing along the curve, -1 ... 1
    i = int(np.argmax(h >= 0))
    if h[i] == 0 or i == 0:
        return float(fpr[i])
    frac = -h[i - 1] / (h[i] - h[i - 1])
    return float(fpr[i - 1] + frac * (fpr[i] - fpr[i - 1]))


def gradient_ops(net: SpeakerEncoderNet, cfg: EncoderTrainConfig = EncoderTrainConfig()) -> float:
    """RTVC's do_gradient_ops: similarity weight and bias gradients x 0.01, then the total L2
    norm of every gradient clipped to 3. Returns the norm before clipping."""
    for p in (net.similarity_weight, net.similarity_bias):
        if p.grad is not None:
            p.grad.mul_(cfg.similarity_grad_scale)
    return float(torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_grad_norm))


def make_optimizer(net: SpeakerEncoderNet, cfg: EncoderTrainConfig = EncoderTrainConfig()) -> torch.optim.Adam:
    """RTVC's encoder optimizer: Adam over ``net.parameters()`` (w and b first), lr 1e-4."""
    return torch.optim.Adam(net.parameters(), lr=cfg.lr)


@dataclass(frozen=True)
class GE2EStepResult:
    """One step: loss, EER, the total gradient norm seen by the clip, and (when asked for)
    embeddings (N*M, D) and the similarity matrix (N, M, N), detached."""

    loss: float
    eer: float
    grad_norm: float
    embeds: torch.Tensor | None = None
    sim: torch.Tensor | None = None


def train_step(net: SpeakerEncoderNet, optimizer: torch.optim.Optimizer, frames: torch.Tensor,
               n_speakers: int, *, cfg: EncoderTrainConfig = EncoderTrainConfig(),
               keep_outputs: bool = False, inspect_gradients=None) -> GE2EStepResult:
    """One GE2E step on frames (N*M, T, 40) power mels, speaker-major: embed, loss, EER,
    zero_grad, backward, `gradient_ops`, Adam step. inspect_gradients(net) runs after
    backward, before the gradient ops."""
    net.train()
    embeds = net(frames)
    loss, sim = ge2e_loss(embeds.view(n_speakers, -1, embeds.shape[-1]), net.similarity_weight,
                          net.similarity_bias)
    eer = equal_error_rate(sim)
    optimizer.zero_grad()
    loss.backward()
    if inspect_gradients is not None:
        inspect_gradients(net)
    norm = gradient_ops(net, cfg)
    optimizer.step()
    if keep_outputs:
        return GE2EStepResult(loss.item(), eer, norm, embeds.detach(), sim.detach())
    return GE2EStepResult(loss.item(), eer, norm)


# ------------------------------------------------------------------------------- batches
class RandomCycler(Generic[T]):
    """RTVC's RandomCycler: ``sample(n)`` gives whole random permutations while n >= the
    number of items, else items from a queue of a permutation, refilled when it empties, so
    every item comes once before any comes again. Permutations are ``rng.sample(items, k)``."""

    def __init__(self, items: Sequence[T], rng: random.Random):
        if len(items) == 0:
            raise ValueError("RandomCycler: no items")
        self.items = list(items)
        self.queue: list[T] = []
        self.rng = rng

    def _permutation(self) -> list[T]:
        return self.rng.sample(self.items, len(self.items))

    def sample(self, count: int) -> list[T]:
        """``count`` items."""
        out: list[T] = []
        while count > 0:
            if count >= len(self.items):
                out += self._permutation()
                count -= len(self.items)
                continue
            take = min(count, len(self.queue))
            out += self.queue[:take]
            self.queue = self.queue[take:]
            count -= take
            if not self.queue:
                self.queue = self._permutation()
        return out


class SpeakerSampler:
    """RTVC's SpeakerBatch sampling for fixed speakers: each speaker has a cycler over its
    utterances (mel frames (T, 40), T >= partial_frames); a batch takes M utterances per
    speaker and a random crop of each.

    py_rng replays ``random.seed(s)`` (``random.Random(s)``), np_rng ``np.random.seed(s)``
    (``np.random.RandomState(s)``).
    """

    def __init__(self, speakers: Sequence[Sequence[np.ndarray]], py_rng: random.Random,
                 np_rng: np.random.RandomState, cfg: EncoderTrainConfig = EncoderTrainConfig()):
        self.cyclers = [RandomCycler(list(range(len(utts))), py_rng) for utts in speakers]
        self.speakers = [list(utts) for utts in speakers]
        self.np_rng, self.cfg = np_rng, cfg

    def batch(self, speaker_ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(frames (N*M, partial_frames, 40) float32 speaker-major, ranges (N, M, 2) [start, end))."""
        ids = range(len(self.speakers)) if speaker_ids is None else speaker_ids
        n = self.cfg.partial_frames
        frames, ranges = [], []
        for s in ids:
            rows = []
            for u in self.cyclers[s].sample(self.cfg.utterances_per_speaker):
                mel = self.speakers[s][u]
                start = 0 if mel.shape[0] == n else int(self.np_rng.randint(0, mel.shape[0] - n))
                frames.append(mel[start:start + n])
                rows.append((start, start + n))
            ranges.append(rows)
        return np.stack(frames).astype(np.float32), np.array(ranges, dtype=np.int64)
