"""A 3 s clone on an idle machine, then while another process keeps one core busy.

    python benchmarks/under_load.py [--precisions float32,int8] [--runs 2]

Full-size random-weight models (random_models.py: 270 mel frames, 3.4 s, as a 10-word
sentence). The competitor is a bounded busy loop (a child process this script starts and
stops). Prints the best of ``--runs`` clone times, idle and loaded, and their ratio; the target
on 2 cores is a ratio of at most 2.5 (the vocoder moves to one thread when a core is taken:
its per-step barriers would otherwise wait for time slices).
"""
from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import torch
from random_models import write_models

import sv2tts

SENTENCE = "The quick brown fox jumps over the lazy dog today."


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def best_time(pipe: sv2tts.Pipeline, voice: Path, precision: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        pipe.clone(voice, SENTENCE, seed=0, precision=precision)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--precisions", default="float32,int8")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    print(f"{torch.get_num_threads()} torch threads; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        models = write_models(Path(tmp))
        voice = sv2tts.save_voice(Path(tmp) / "voice.npy", sv2tts.embed(Path(__file__).parents[1] / "examples" /
                                                                         "reference.flac"))
        pipe = sv2tts.Pipeline(synthesizer=models["synthesizer"], vocoder=models["vocoder"]).load_all()
        for precision in args.precisions.split(","):
            pipe.clone(voice, "Warm up.", seed=0, precision=precision)
            idle = best_time(pipe, voice, precision, args.runs)
            competitor = multiprocessing.Process(target=busy, args=(600,), daemon=True)
            competitor.start()
            try:
                time.sleep(0.5)
                loaded = best_time(pipe, voice, precision, args.runs)
            finally:
                competitor.terminate()
                competitor.join()
            print(f"{precision:8} idle {idle:6.2f} s   one core busy {loaded:6.2f} s   ratio {loaded / idle:4.2f} "
                  f"(target <= 2.5: {'yes' if loaded / idle <= 2.5 else 'NO'})")


if __name__ == "__main__":
    main()
