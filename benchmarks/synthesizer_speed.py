"""Synthesizer speed at full size (random weights): mel frames per second.

Decodes a fixed number of decoder steps (stop tokens ignored) for one sentence and for a
batch of five, with the library's fast path and with a straightforward step-by-step
reference of the same procedure (RTVC's generate, `Tacotron.generate_rtvc`) in the same run,
and prints the ratio. Best of several repeats, fast and reference runs interleaved (the
machine is shared: with 2 threads, a busy neighbour can slow any run many times over).

    .venv/bin/python benchmarks/synthesizer_speed.py [--steps 100] [--repeats 5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sv2tts.synthesizer.config import SynthesizerConfig
from sv2tts.synthesizer.inference import FastTacotron
from sv2tts.synthesizer.model import Tacotron
from sv2tts.synthesizer.text import text_to_sequence

SENTENCE = "The quick brown fox jumps over the lazy dog, and then it runs far away."


def random_model(seed: int = 0) -> Tacotron:
    """A full-size Tacotron with xavier weights (RTVC's init), r = 2, stop never firing."""
    torch.manual_seed(seed)
    model = Tacotron(SynthesizerConfig())
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                torch.nn.init.xavier_uniform_(p)
        model.decoder.r.fill_(2)
        model.decoder.stop_proj.bias.fill_(-1e4)  # the reference decodes every step
    return model


def best_times(fns, repeats: int) -> list[float]:
    """Best wall time of each function, runs interleaved so that all see the same load."""
    for fn in fns:
        fn()  # warm-up
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100, help="decoder steps (2 frames each)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    reference = random_model()
    fast_model = random_model()
    engine = FastTacotron(fast_model)
    r = reference.r
    seq = text_to_sequence(SENTENCE)
    rng = np.random.RandomState(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{args.steps} decoder steps = {args.steps * r} frames, text of {len(seq)} ids")
    for batch in (1, 5):
        spk = torch.from_numpy(rng.rand(batch, 256).astype(np.float32))
        spk = torch.nn.functional.normalize(spk, dim=1)
        chars = torch.tensor([seq] * batch)
        t_ref, t_fast = best_times(
            [lambda: reference.generate_rtvc(chars, spk, steps=args.steps * r),
             lambda: engine.generate([seq] * batch, spk, fixed_steps=args.steps)],
            args.repeats)
        frames = batch * args.steps * r
        print(f"batch {batch}: fast {t_fast:.3f} s ({frames / t_fast:,.0f} frames/s), "
              f"reference {t_ref:.3f} s ({frames / t_ref:,.0f} frames/s), "
              f"speed-up x{t_ref / t_fast:.2f}")


if __name__ == "__main__":
    main()
