"""End-to-end time of one clone with full-size random-weight models (fixed decoder steps).

    python benchmarks/end_to_end.py [--frames 240] [--repeats 2]

Writes full-size RTVC-format synthesizer.pt / vocoder.pt with random weights (the synthesizer's
stop token never fires, so it decodes exactly --frames frames: a 10-word sentence is ~3 s, i.e.
~240 frames), then prints:
- `sv2tts --help` wall time, and cold `sv2tts clone` processes split (from their -vv log) into
  imports, model loads and the first call, with their total and peak memory: the first one
  converts the checkpoints (see the README's Models), the later ones map the converted copies;
- a warm second call on a loaded Pipeline split into embed / synthesize / vocode, for each
  precision, with the real-time factor (audio seconds / wall seconds) and peak memory.
Targets (2 CPU cores): warm call faster than real time with the fastest precision; first
model load within 1.5 s of the CLI starting; `sv2tts --help` well under 1 s.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import sv2tts
from sv2tts.vocoder.model import WaveRNN
from synthesizer_speed import random_model  # this folder (scripts run from it)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "examples" / "reference.flac"
TEXT = "The quick brown fox jumps over the lazy dog today."  # 10 words


def write_models(folder: Path) -> dict[str, Path]:
    """Full-size checkpoints as large as RTVC's (Adam's two moments per parameter saved too:
    synthesizer.pt ~370 MB, vocoder.pt ~54 MB)."""
    taco = random_model()  # full size, r = 2, the stop token never fires: exactly max_frames frames
    for name, model in (("synthesizer", taco), ("vocoder", WaveRNN())):
        params = list(model.parameters())
        adam = {"state": {i: {"step": torch.tensor(1.0), "exp_avg": p.detach().clone(),
                              "exp_avg_sq": p.detach().clone()} for i, p in enumerate(params)},
                "param_groups": [{"lr": 1e-3, "params": list(range(len(params)))}]}
        torch.save({"model_state": model.state_dict(), "optimizer_state": adam}, folder / f"{name}.pt")
    return {"synthesizer": folder / "synthesizer.pt", "vocoder": folder / "vocoder.pt"}


def sv2tts_exe() -> list[str]:
    exe = shutil.which("sv2tts", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "sv2tts.cli"]


def time_help(repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(sv2tts_exe() + ["--help"], check=True, capture_output=True)
        best = min(best, time.perf_counter() - t)
    return best


def cold_cli(models: dict[str, Path], frames: int, precision: str, out: Path) -> dict[str, float]:
    """A fresh CLI process's timeline from its -vv log: imports (until the first model load),
    model loads, the call (embed + synthesize + vocode + write), total; and its peak RSS (GB)."""
    t = time.perf_counter()
    proc = subprocess.run(sv2tts_exe() + ["clone", str(REFERENCE), TEXT, "-o", str(out), "--seed", "0",
                                          "--synthesizer", str(models["synthesizer"]),
                                          "--vocoder", str(models["vocoder"]), "--max-frames", str(frames),
                                          "--precision", precision, "-vv"],
                          capture_output=True, text=True)
    total = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    stamps = [int(m) / 1000 for m in re.findall(r"^\s*(\d+) ms DEBUG: load(?:ing|ed) the", proc.stderr, re.M)]
    first, loaded = (stamps[0], stamps[-1]) if stamps else (float("nan"), float("nan"))
    return {"imports": first, "load": loaded - first, "call": total - loaded, "total": total,
            "peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6}


def warm(models: dict[str, Path], frames: int, repeats: int) -> None:
    t = time.perf_counter()
    pipe = sv2tts.Pipeline(synthesizer=models["synthesizer"], vocoder=models["vocoder"]).load_all()
    print(f"warm pipeline: load {time.perf_counter() - t:.2f} s")
    pipe.clone(REFERENCE, TEXT, seed=0, max_frames=frames, progress=False)  # first call: JIT, caches
    print(f"{'precision':>10} {'embed':>7} {'synth':>7} {'vocode':>7} {'total':>7} {'audio':>7} {'x RT':>6}")
    for precision in ("float32", "bfloat16", "int8"):
        best = None
        for _ in range(repeats):
            t0 = time.perf_counter()
            voice = pipe.embed(REFERENCE)
            t1 = time.perf_counter()
            mel = pipe.synthesize(TEXT, voice, seed=0, max_frames=frames, precision=precision)
            t2 = time.perf_counter()
            wav = pipe.vocode(mel, seed=0, precision=precision, progress=False)
            t3 = time.perf_counter()
            row = (t1 - t0, t2 - t1, t3 - t2, t3 - t0, len(wav) / 16000)
            best = row if best is None or row[3] < best[3] else best
        e, s, v, total, audio = best
        print(f"{precision:>10} {e:>6.2f}s {s:>6.2f}s {v:>6.2f}s {total:>6.2f}s {audio:>6.2f}s {audio / total:>5.2f}x")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=240, help="mel frames decoded (12.5 ms each)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    logging.getLogger("sv2tts").setLevel(logging.ERROR)  # the max_frames warning is expected here
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; text: {TEXT!r}, {args.frames} frames")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SV2TTS_HOME"] = str(Path(tmp) / "home")  # converted copies go there, not to your cache
        models = write_models(Path(tmp))
        print(f"sv2tts --help: {time_help():.2f} s")
        for precision, when in (("float32", "first load of the files: converts them"),
                                ("float32", "converted copies cached"), ("int8", "converted copies cached")):
            c = cold_cli(models, args.frames, precision, Path(tmp) / "out.wav")
            print(f"cold CLI clone ({precision}, {when}): imports {c['imports']:.2f} s, model loads "
                  f"{c['load']:.2f} s, first call {c['call']:.2f} s, total {c['total']:.2f} s, "
                  f"peak RSS {c['peak']:.2f} GB")
        warm(models, args.frames, args.repeats)


if __name__ == "__main__":
    main()
