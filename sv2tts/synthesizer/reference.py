"""RTVC's `Synthesizer.synthesize_spectrograms`, faithfully (padded batches and all).

Kept as the reference the fast path is checked against, and to reproduce RTVC's numbers
(including its batch effects: see model.Tacotron.generate_rtvc). Not the public path.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .model import Tacotron
from .text import text_to_sequence


@torch.inference_mode()
def synthesize_spectrograms_rtvc(model: Tacotron, texts: Sequence[str], embeddings,
                                 *, steps: int = 2000, batch_size: int = 16,
                                 generator: torch.Generator | None = None
                                 ) -> tuple[list[np.ndarray], np.ndarray]:
    """texts + embeddings (n, S) -> ([mel (M, T_i) float32], attention of the last batch).

    ids of text.strip(), consecutive batches of `batch_size` right-padded with 0, RTVC's
    generate, postnet output, trailing frames with max < stop_threshold dropped (no lower
    bound, as RTVC). generator None = dropout off.
    """
    device = model.encoder_proj.weight.device
    seqs = [text_to_sequence(t) for t in texts]
    embeds = np.asarray(embeddings, dtype=np.float32).reshape(len(texts), -1)
    specs: list[np.ndarray] = []
    alignments = np.zeros((0,), np.float32)
    for start in range(0, len(seqs), batch_size):
        batch = seqs[start:start + batch_size]
        n = max(len(s) for s in batch)
        chars = torch.tensor([s + [0] * (n - len(s)) for s in batch], device=device)
        spk = torch.from_numpy(embeds[start:start + batch_size]).to(device)
        _, mels, alignments_t = model.generate_rtvc(chars, spk, steps=steps, generator=generator)
        alignments = alignments_t.cpu().numpy()
        for m in mels.cpu().numpy():
            while m.shape[1] and np.max(m[:, -1]) < model.cfg.stop_threshold:
                m = m[:, :-1]
            specs.append(m)
    return specs, alignments
