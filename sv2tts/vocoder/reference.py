"""Faithful reference generation loop: RTVC's ``WaveRNN.generate`` op for op.

Same torch calls in the same order (linear, gru_cell, cat, softmax, normalisation,
``torch.multinomial``) so that, with the same random stream, the same labels come out. Slow
by design (the fast loop is in :mod:`sv2tts.vocoder.fast`); it is the yardstick for tests and
benchmarks, selected with ``precision="reference"``.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .model import WaveRNN


def burn_gru_cell_init(model: WaveRNN, generator: torch.Generator) -> None:
    """Advance ``generator`` as RTVC's two ``nn.GRUCell`` constructions advance the global RNG.

    RTVC builds GRUCells for rnn1 then rnn2 at every ``generate`` call; each draws
    ``uniform_`` for weight_ih, weight_hh, bias_ih, bias_hh (values discarded).
    """
    if generator.device.type != "cpu":
        return  # the GRUCell initialisers draw from the CPU generator, not the CUDA one
    for rnn in (model.rnn1, model.rnn2):
        bound = 1.0 / rnn.hidden_size ** 0.5
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            torch.empty(getattr(rnn, name).shape).uniform_(-bound, bound, generator=generator)


@torch.inference_mode()
def reference_step(model: WaveRNN, x: torch.Tensor, m_t: torch.Tensor, aux_t: list[torch.Tensor],
                   h1: torch.Tensor, h2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One sample step for F folds: x (F, 1), m_t (F, mels), aux_t 4 x (F, aux) -> (logits, h1, h2)."""
    a1, a2, a3, a4 = aux_t
    r1, r2 = model.rnn1, model.rnn2
    x = torch.cat([x, m_t, a1], dim=1)
    x = model.I(x)
    h1 = torch.gru_cell(x, h1, r1.weight_ih_l0, r1.weight_hh_l0, r1.bias_ih_l0, r1.bias_hh_l0)
    x = x + h1
    inp = torch.cat([x, a2], dim=1)
    h2 = torch.gru_cell(inp, h2, r2.weight_ih_l0, r2.weight_hh_l0, r2.bias_ih_l0, r2.bias_hh_l0)
    x = x + h2
    x = torch.cat([x, a3], dim=1)
    x = F.relu(model.fc1(x))
    x = torch.cat([x, a4], dim=1)
    x = F.relu(model.fc2(x))
    return model.fc3(x), h1, h2


@torch.inference_mode()
def generate_reference(model: WaveRNN, mels: torch.Tensor, aux: torch.Tensor,
                       generator: torch.Generator,
                       progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Sample labels (F, L) int64 for folded features mels (F, L, mels), aux (F, L, res_out).

    Draws exactly as RTVC: ``torch.multinomial(p / p.sum(-1), 1, True)`` once per step from
    ``generator`` (callers burn the GRUCell-construction draws first for seeded parity).
    ``progress(n)`` is called with the number of steps done since the last call.
    """
    n_folds, seq_len, _ = mels.shape
    dev = mels.device
    cfg = model.cfg
    h1 = torch.zeros(n_folds, cfg.rnn_dims, device=dev)
    h2 = torch.zeros(n_folds, cfg.rnn_dims, device=dev)
    x = torch.zeros(n_folds, 1, device=dev)
    aux_split = model.split_aux(aux)
    labels = []
    for i in range(seq_len):
        logits, h1, h2 = reference_step(model, x, mels[:, i, :], [a[:, i, :] for a in aux_split], h1, h2)
        posterior = F.softmax(logits, dim=1)
        probs = posterior / posterior.sum(-1, keepdim=True)  # torch.distributions.Categorical
        k = torch.multinomial(probs, 1, True, generator=generator)[:, 0]
        labels.append(k)
        x = (2 * k.float() / (cfg.n_classes - 1.0) - 1.0).unsqueeze(-1)
        if progress is not None and (i + 1) % 100 == 0:
            progress(100)
    if progress is not None and seq_len % 100:
        progress(seq_len % 100)
    return torch.stack(labels, dim=1) if labels else torch.zeros(n_folds, 0, dtype=torch.long)
