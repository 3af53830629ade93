"""Synthesizer speed at full size (random weights): mel frames per second.

Decodes a fixed number of decoder steps (stop tokens ignored) for one sentence and for a
batch of five, with the library's engine in each precision, against RTVC's own Tacotron
decoding when ``RTVC_SRC`` points at an RTVC checkout (else the faithful re-implementation of
RTVC's generate, `Tacotron.generate_rtvc`), in the same run, and prints the ratios and how far
the reduced precisions' mels are from float32's (dropout off). Best of several repeats, fast and reference runs interleaved (the
machine is shared: with 2 threads, a busy neighbour can slow any run many times over).

    [RTVC_SRC=path/to/Real-Time-Voice-Cloning] .venv/bin/python benchmarks/synthesizer_speed.py [--steps 100]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from sv2tts.synthesizer.config import SynthesizerConfig
from sv2tts.synthesizer.inference import FastTacotron
from sv2tts.synthesizer.model import Tacotron
from sv2tts.synthesizer.text import text_to_sequence

PRECISIONS = ("float32", "bfloat16", "int8")
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


def rtvc_tacotron(src: str, state: dict):
    """RTVC's own Tacotron from a checkout at ``src``, built as its Synthesizer.load does."""
    sys.path.insert(0, src)
    from synthesizer.hparams import hparams
    from synthesizer.models.tacotron import Tacotron as RtvcTacotron
    try:
        from synthesizer.utils.symbols import symbols  # RTVC master
    except ImportError:
        from synthesizer.text.symbols import symbols

    model = RtvcTacotron(embed_dims=hparams.tts_embed_dims, num_chars=len(symbols),
                         encoder_dims=hparams.tts_encoder_dims, decoder_dims=hparams.tts_decoder_dims,
                         n_mels=hparams.num_mels, fft_bins=hparams.num_mels,
                         postnet_dims=hparams.tts_postnet_dims, encoder_K=hparams.tts_encoder_K,
                         lstm_dims=hparams.tts_lstm_dims, postnet_K=hparams.tts_postnet_K,
                         num_highways=hparams.tts_num_highways, dropout=hparams.tts_dropout,
                         stop_threshold=hparams.tts_stop_threshold,
                         speaker_embedding_size=hparams.speaker_embedding_size)
    model.load_state_dict(state)
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100, help="decoder steps (2 frames each)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = random_model()
    src = os.environ.get("RTVC_SRC")
    if src:
        rtvc = rtvc_tacotron(src, model.state_dict())
        reference, ref_name = (lambda chars, spk, frames: rtvc.generate(chars, spk, steps=frames)), "RTVC"
    else:
        reference, ref_name = (lambda chars, spk, frames: model.generate_rtvc(chars, spk, steps=frames)), \
            "reference (RTVC's loop re-implemented; set RTVC_SRC for RTVC's own)"
    engines = {p: FastTacotron(random_model(), p) for p in PRECISIONS}
    r = model.r
    seq = text_to_sequence(SENTENCE)
    rng = np.random.RandomState(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{args.steps} decoder steps = {args.steps * r} frames, text of {len(seq)} ids; against {ref_name}")
    for batch in (1, 5):
        spk = torch.from_numpy(rng.rand(batch, 256).astype(np.float32))
        spk = torch.nn.functional.normalize(spk, dim=1)
        chars = torch.tensor([seq] * batch)
        fns = [lambda: reference(chars, spk, args.steps * r)]
        fns += [lambda e=e: e.generate([seq] * batch, spk, fixed_steps=args.steps) for e in engines.values()]
        times = best_times(fns, args.repeats)
        frames = batch * args.steps * r
        exact = engines["float32"].generate([seq] * batch, spk, fixed_steps=args.steps)[0].mel
        print(f"batch {batch}: {ref_name.split()[0]} {times[0]:.3f} s ({frames / times[0]:,.0f} frames/s)")
        for (p, e), t in zip(engines.items(), times[1:]):
            err = (e.generate([seq] * batch, spk, fixed_steps=args.steps)[0].mel - exact).abs()
            print(f"  {p:9s} {t:.3f} s ({frames / t:,.0f} frames/s), x{times[0] / t:.2f}; mel vs float32: "
                  f"max |diff| {float(err.max() / exact.abs().max()):.1e} of max |mel|")


if __name__ == "__main__":
    main()
