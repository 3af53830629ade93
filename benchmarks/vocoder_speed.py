"""Vocoder generation speed: RTVC's reference loop vs the engines of each precision.

Full-size WaveRNN with random weights, RTVC's default target 8000 / overlap 800 (every batched
generation is 9,600 sequential steps), 3 s and 5 s of audio. For each path: the engine that
runs it, best wall time over --repeats seeded runs (the paths interleaved) of
``Vocoder.vocode`` (end to end: upsampling, loop, post-processing), real-time factor (seconds
per second of audio), achieved GFLOP/s counted on RTVC's nominal per-step work (8.1 MFLOP per
fold), and the speed-up over the reference loop. The float32 bound is a microbenchmark of the
step's matrix multiplies at the same shapes (M = folds) with torch's ``addmm``. Reduced-precision
paths also report their log-spectral distance to the float32 path (same seeds).

    .venv/bin/python benchmarks/vocoder_speed.py [--repeats 2] [--threads N] [--seconds 3 5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.signal import welch

from sv2tts.vocoder import Vocoder, WaveRNN

PATHS = ("reference", "float32", "bfloat16", "int8")


def step_macs(cfg) -> int:
    """Multiply-adds of one RTVC step for one fold (input layer, 2 GRUs, 3 dense layers)."""
    r, fc, a, n = cfg.rnn_dims, cfg.fc_dims, cfg.aux_dims, cfg.n_classes
    return ((1 + cfg.num_mels + a) * r + 3 * r * r + 3 * r * r + 3 * r * (r + a) + 3 * r * r
            + (r + a) * fc + (fc + a) * fc + fc * n)


def matmul_bound(cfg, folds: int, n_iter: int = 300) -> float:
    """Seconds per step for the step's float32 GEMMs at M = folds (addmm, best of 5)."""
    r, fc, a, n = cfg.rnn_dims, cfg.fc_dims, cfg.aux_dims, cfg.n_classes
    shapes = [(r, 1 + cfg.num_mels + a), (3 * r, r), (3 * r, r), (3 * r, r + a), (3 * r, r),
              (fc, r + a), (fc, fc + a), (n, fc)]  # (N, K); I, GRU1 ih/hh, GRU2 ih/hh, fc1-3
    ws = [torch.randn(s) * 0.05 for s in shapes]
    bs = [torch.zeros(s[0]) for s in shapes]
    xs = [torch.randn(folds, s[1]) for s in shapes]
    runs = {"addmm": [(lambda x=x, w=w.t().contiguous(), b=b: torch.addmm(b, x, w)) for x, w, b in zip(xs, ws, bs)]}
    best = {}
    for name, fns in runs.items():
        t_best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n_iter):
                for f in fns:
                    f()
            t_best = min(t_best, (time.perf_counter() - t0) / n_iter)
        best[name] = t_best
    return min(best.values()), best


def lsd_db(wa: list[np.ndarray], wb: list[np.ndarray]) -> float:
    pa = np.mean([welch(w, nperseg=512)[1] for w in wa], axis=0)
    pb = np.mean([welch(w, nperseg=512)[1] for w in wb], axis=0)
    return float(np.sqrt(np.mean((10 * np.log10(pa / pb)) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--seconds", type=float, nargs="+", default=[3.0, 5.0])
    ap.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    voc = Vocoder(WaveRNN(), device="cpu")  # full size, PyTorch default init
    cfg = voc.config
    macs = step_macs(cfg)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; nominal step: {macs / 1e6:.2f} M multiply-adds "
          f"= {2 * macs / 1e6:.2f} MFLOP per fold; target 8000, overlap 800")
    print("engines: " + ", ".join(f"{p} {voc.engine(p).name}" for p in args.paths))
    rng = np.random.RandomState(0)
    for seconds in args.seconds:
        frames = int(round(seconds * cfg.sample_rate / cfg.hop_length)) + 1
        mel = np.clip(rng.randn(80, frames).cumsum(axis=1) * 0.3 - 1.0, -4, 4).astype(np.float32)
        mels, _ = voc.upsample(mel)
        folds, steps = mels.shape[0], mels.shape[1]
        audio_s = (frames - 1) * cfg.hop_length / cfg.sample_rate
        flop = 2 * macs * folds * steps
        bound_step, bound_detail = matmul_bound(cfg, folds)
        print(f"\n== {audio_s:.1f} s of audio: {frames} frames, {folds} folds x {steps} steps ==")
        print(f"float32 bound (7 GEMMs/step at M={folds}): {bound_step * 1e3:.3f} ms/step -> "
              f"{bound_step * steps:.2f} s, {2 * macs * folds / bound_step / 1e9:.1f} GFLOP/s "
              f"[{', '.join(f'{k} {v * 1e3:.3f} ms' for k, v in bound_detail.items())}]")
        times = {path: [] for path in args.paths}
        waves = {path: [] for path in args.paths}
        for seed in range(args.repeats):  # paths interleaved: a noisy machine slows them alike
            for path in args.paths:
                t0 = time.perf_counter()
                waves[path].append(voc.vocode(mel, seed=seed, precision=path, progress=False))
                times[path].append(time.perf_counter() - t0)
        results = {path: min(t) for path, t in times.items()}
        ref = results.get("reference")
        print(f"{'path':<10} {'seconds':>8} {'ms/step':>8} {'RTF':>6} {'GFLOP/s':>8} {'vs ref':>7} {'vs bound':>8} "
              f"{'LSD vs f32 (dB)':>15}")
        for path, t in results.items():
            lsd = (f"{lsd_db(waves[path], waves['float32']):.3f}"
                   if "float32" in waves and path != "float32" else "-")
            print(f"{path:<10} {t:8.2f} {t / steps * 1e3:8.3f} {t / audio_s:6.2f} {flop / t / 1e9:8.1f} "
                  f"{(ref / t if ref else float('nan')):6.2f}x {t / (bound_step * steps):7.2f}x {lsd:>15}")
    print("\nRTF = generation seconds per second of audio (lower is faster); GFLOP/s counts RTVC's nominal"
          " work; 'vs bound' = time / float32-GEMM-bound time; LSD: log-spectral distance of the"
          " seed-averaged Welch spectra, same seeds (reference uses another sampler: independent draws).")


if __name__ == "__main__":
    main()
