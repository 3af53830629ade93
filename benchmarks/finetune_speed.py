"""Synthesizer fine-tuning speed: training steps per second of the full-size Tacotron (RTVC's
hparams) at batch sizes 4 and 12, on the CPU (and CUDA when available), with sv2tts's training
step (`sv2tts.train.synthesizer.train_step`) and, when ``RTVC_SRC`` points at an RTVC checkout,
RTVC's own Tacotron and step (synthesizer/train.py's loss, clipping and Adam) on the same
batches in the same run; then the process's peak RSS.

Batches are synthetic but shaped like fine-tuning data: ``--frames`` mel frames (5 s at 400)
and ``--chars`` characters for the longest item, the others 70-100 % of that.

    [RTVC_SRC=path/to/Real-Time-Voice-Cloning] .venv/bin/python benchmarks/finetune_speed.py [--steps 5]
"""
from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F

from sv2tts.train import synthesizer as S
from sv2tts.train.data import SynthesizerItem, collate_synthesizer
from synthesizer_speed import rtvc_tacotron

STAGE = (2, 1e-3, 20_000, 12)  # RTVC's first stage: r 2


def make_batch(batch_size: int, frames: int, chars: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    items = []
    for i in range(batch_size):
        scale = 1.0 if i == 0 else rng.uniform(0.7, 1.0)
        ids = np.append(rng.integers(2, 66, int(chars * scale)), 1).astype(np.int32)
        mel = rng.uniform(-4, 4, (80, int(frames * scale))).astype(np.float32)
        embed = rng.standard_normal(256).astype(np.float32)
        items.append(SynthesizerItem(ids, mel, embed / np.linalg.norm(embed), i))
    return collate_synthesizer(items, STAGE[0])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, steps: int, device: torch.device) -> float:
    """Steps per second over ``steps`` steps, after one warm-up step."""
    step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps / (time.perf_counter() - start)


def sv2tts_step(device: torch.device, batch):
    model = S.new_tacotron(seed=0).to(device)
    optimizer = S.make_optimizer(model)
    S.apply_stage(model, optimizer, STAGE)
    generator = torch.Generator(device).manual_seed(0)
    return lambda: S.train_step(model, optimizer, batch, generator=generator), model


def rtvc_step(src: str, device: torch.device, batch, state: dict):
    """RTVC's Tacotron and its train.py step (losses, clip 1.0, Adam) on the same batch."""
    model = rtvc_tacotron(src, state).to(device)
    from synthesizer.hparams import hparams  # RTVC's: rtvc_tacotron put src on sys.path

    model.r = STAGE[0]
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=STAGE[1])

    def step():
        m1, m2, _, stop = model(batch.chars, batch.mels, batch.embeds)
        loss = (F.mse_loss(m1, batch.mels) + F.l1_loss(m1, batch.mels) + F.mse_loss(m2, batch.mels)
                + F.binary_cross_entropy(stop, batch.stop))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hparams.tts_clip_grad_norm)
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--batch-sizes", default="4,12")
    parser.add_argument("--frames", type=int, default=400, help="mel frames of the longest item")
    parser.add_argument("--chars", type=int, default=100, help="characters of the longest item")
    parser.add_argument("--devices", default="cpu,cuda", help="of cpu,cuda (cuda only when available)")
    args = parser.parse_args()
    src = os.environ.get("RTVC_SRC")
    wanted = args.devices.split(",")
    devices = [torch.device(d) for d in ("cpu", "cuda") if d in wanted and (d == "cpu" or torch.cuda.is_available())]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; longest item {args.frames} frames, "
          f"{args.chars} chars; {args.steps} timed steps after 1 warm-up")
    for device in devices:
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            batch = make_batch(batch_size, args.frames, args.chars).to(device)
            step, model = sv2tts_step(device, batch)
            ours = time_steps(step, args.steps, device)
            line = (f"{device.type:4} batch {batch_size:2}: sv2tts {ours:.3f} steps/s "
                    f"({1000 / ours / 60:.1f} min per 1k steps)")
            if src:
                state = S.new_tacotron(seed=0).state_dict()
                theirs = time_steps(rtvc_step(src, device, batch, state), args.steps, device)
                line += f"; RTVC {theirs:.3f} steps/s; ratio {ours / theirs:.2f}x"
            else:
                line += "; RTVC: set RTVC_SRC to time its own step"
            print(line, flush=True)
            del model, step
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
