"""Items per minute: the local batch vs the same batch on Ray (1 worker x 2 CPUs, 2 workers x 1 CPU).

    python benchmarks/batch_ray.py [--items 16] [--precision int8]

Full-size random-weight models (random_models.py: every sentence stops after a ten-word length,
270 mel frames, 3.4 s), int8 vocoder, groups of 8 (the default). Each item has its own reference
(the example clip at a different gain, so each is read, shipped and embedded) and its own
output. The Ray runs ship bytes both ways (no shared path: the general cluster case). Start-up
is reported apart: Ray's own (ray.init), the workers' (processes started, models loaded) and
a first warm-up group per worker; items per minute count only the batch itself. The local
batch runs first and last (this machine's speed drifts); the speeds are compared with their
mean. Each mode says whether it wrote the local batch's bytes.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch
from random_models import write_models

import sv2tts
from sv2tts.batch import Item

SENTENCE = "The quick brown fox jumps over the lazy dog today."
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "reference.flac"


def references(folder: Path, n: int) -> list[Path]:
    """n different reference files: the example clip at n gains."""
    wav, rate = sf.read(EXAMPLE, dtype="float32")
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        paths.append(folder / f"speaker{i:02d}.flac")
        sf.write(paths[-1], wav * (0.5 + 0.03 * i), rate)
    return paths


def items(refs: list[Path], out: Path) -> list:
    return [Item(r, SENTENCE, out / f"{r.stem}.wav") for r in refs]


def outputs(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.iterdir())]


def local(refs, models, root: Path, precision: str) -> dict:
    pipe = sv2tts.Pipeline(**models).load_all()
    start = time.perf_counter()
    sv2tts.run_batch(pipe, items(refs[:1], root / "warm"), seed=0, precision=precision, progress=False)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    report = sv2tts.run_batch(pipe, items(refs, root / "out"), seed=0, precision=precision, progress=False)
    seconds = time.perf_counter() - start
    assert report["counts"]["done"] == len(refs), report["counts"]
    return {"seconds": seconds, "warm": warm, "files": outputs(root / "out")}


def on_ray(refs, models, root: Path, precision: str, workers: int, cpus: int) -> dict:
    name = f"ray-{workers}x{cpus}"
    start = time.perf_counter()
    with sv2tts.CloneWorkers(workers, cpus_per_worker=cpus, **models) as pool:
        started = time.perf_counter() - start
        start = time.perf_counter()
        pool.run(items(refs[:workers], root / f"warm-{name}"), seed=0, precision=precision, group=1,
                 shared_path=False, progress=False)
        warm = time.perf_counter() - start
        start = time.perf_counter()
        report = pool.run(items(refs, root / name), seed=0, precision=precision, shared_path=False, progress=False)
        seconds = time.perf_counter() - start
    assert report["counts"]["done"] == len(refs), report["counts"]
    return {"seconds": seconds, "start": started, "warm": warm, "files": outputs(root / name)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--precision", default="int8")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"machine: {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = write_models(root / "models")
        refs = references(root / "refs", args.items)
        print(f"{args.items} items of 3.4 s, {args.precision}, groups of 8, full-size random weights")
        results = {"local batch": local(refs, models, root / "first", args.precision)}

        import ray

        start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="warning")
        ray_start = time.perf_counter() - start
        try:
            for workers, cpus in ((1, 2), (2, 1)):
                results[f"Ray {workers} worker(s) x {cpus} CPU(s)"] = on_ray(refs, models, root, args.precision,
                                                                            workers, cpus)
        finally:
            ray.shutdown()
        results["local batch, again"] = local(refs, models, root / "again", args.precision)  # the machine's drift
    base = (results["local batch"]["seconds"] + results["local batch, again"]["seconds"]) / 2
    print(f"Ray start-up (ray.init, a local Ray): {ray_start:.1f} s")
    for name, r in results.items():
        start = f"workers ready {r['start']:.1f} s, " if "start" in r else ""
        same = r["files"] == results["local batch"]["files"]
        print(f"{name:<28} {len(refs) / r['seconds'] * 60:6.1f} items/min ({r['seconds']:.1f} s, "
              f"{base / r['seconds']:.2f}x the local batches' mean speed; start-up apart: {start}first group "
              f"{r['warm']:.1f} s; same bytes as the local batch: {same})")
    print("(bfloat16 and int8 audio depends on torch's thread count: 1-CPU workers differ from a 2-thread local run)")


if __name__ == "__main__":
    main()
