"""Items per minute: 8 clones one at a time vs one `clone_many` call (their vocoding shared).

    python benchmarks/throughput.py [--precisions float32,int8] [--items 8]

Full-size random-weight models (random_models.py: every sentence stops after a fixed length):
ten-word items (270 mel frames, 3.4 s) and one-second items (80 frames), each item with its own
voice (random unit embeddings saved as voice files) and seed. For each precision: warm-up, the
items cloned one by one with `Pipeline.clone`, then all at once with `Pipeline.clone_many`;
prints items per minute for both, the speed-up, whether every item's audio is identical both
ways (batch independence), and the process's peak RSS. Targets on 2 cores: >= 2.5x (float32)
and >= 2x (int8) for the 3 s items, >= 4x for the 1 s items.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from random_models import TEN_WORDS, write_models

import sv2tts

SENTENCE = "The quick brown fox jumps over the lazy dog today."
LENGTHS = {"3.4 s items": TEN_WORDS, "1 s items": 40}  # decoder steps (2 frames of 12.5 ms each)


def voices(folder: Path, n: int) -> list[Path]:
    """n different voices: random unit embeddings saved as `sv2tts embed` does."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        v = np.abs(rng.standard_normal(256)).astype(np.float32)  # the encoder's outputs are >= 0 (ReLU)
        paths.append(sv2tts.save_voice(folder / f"voice{i}.npy", v / np.linalg.norm(v)))
    return paths


def measure(pipe: sv2tts.Pipeline, items: list[tuple], precision: str) -> dict:
    pipe.clone(*items[0][:2], seed=items[0][2], precision=precision)  # warm-up: engine built, caches filled
    start = time.perf_counter()
    alone = [pipe.clone(ref, text, seed=seed, precision=precision) for ref, text, seed in items]
    t_alone = time.perf_counter() - start
    start = time.perf_counter()
    together = pipe.clone_many(items, precision=precision, progress=False)
    t_many = time.perf_counter() - start
    same = all(isinstance(b, np.ndarray) and np.array_equal(a, b) for a, b in zip(alone, together))
    return {"alone": len(items) / t_alone * 60, "many": len(items) / t_many * 60, "same": same,
            "t_alone": t_alone, "t_many": t_many}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--precisions", default="float32,int8")
    ap.add_argument("--items", type=int, default=8)
    args = ap.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"machine: {cpu}, {torch.get_num_threads()} torch threads; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        refs = voices(Path(tmp), args.items)
        items = [(ref, SENTENCE, seed) for seed, ref in enumerate(refs)]
        print(f"{'items':12} {'precision':9} {'alone/min':>10} {'many/min':>9} {'speed-up':>9}  identical")
        for label, steps in LENGTHS.items():
            models = write_models(Path(tmp) / label.replace(" ", "_"), steps)
            pipe = sv2tts.Pipeline(synthesizer=models["synthesizer"], vocoder=models["vocoder"]).load_all()
            for precision in args.precisions.split(","):
                r = measure(pipe, items, precision)
                print(f"{label:12} {precision:9} {r['alone']:10.1f} {r['many']:9.1f} {r['many'] / r['alone']:8.2f}x  "
                      f"{'yes' if r['same'] else 'NO'}   ({r['t_alone']:.1f} s vs {r['t_many']:.1f} s)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
