"""Load on a real `sv2tts serve` (loopback only): latency, throughput, first audio byte, memory.

    python benchmarks/serve_load.py [--precisions int8,float32] [--concurrency 1,2,4]
                                    [--requests 8] [--workers N] [--quick]

Writes full-size random-weight RTVC-format checkpoints (torch seed 0) to a temporary folder;
for each vocoder precision it starts `sv2tts serve` on a free 127.0.0.1 port, saves one voice
from examples/reference.flac, makes one warm-up request, then prints, per concurrency level,
p50 / p95 latency, requests per minute (completed / wall time * 60) and failures for a bounded
loop of requests of a 10-word sentence; the time to the first audio byte of a streamed
(`stream=true`, raw `pcm`) two-sentence text (median and max of 3 runs, and the whole stream);
and the server's peak RSS (VmHWM). `--quick`: 2 requests per level, concurrency 1 and 2, one
streamed run (a smoke run). Targets on 2 cores: int8 first audio byte under 2.5 s; throughput at
concurrency 4 at least that at 1; no request lost or failed. Printed, never asserted.

Sentence length: random_models.write_models gives the synthesizer a clock that stops every
synthesis pass after 135 steps = 270 mel frames (3.4 s), like a real model on a 10-word
sentence. The returned audio is shorter (the service's post-processing trims what webrtcvad
takes for silence in random-weight output); the vocoder still runs over all 270 frames. The
service synthesises sentence by sentence (`Pipeline.stream`), so the streamed two-sentence text
sends its first sentence (270 frames) before the second is synthesised.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch
from random_models import TEN_WORDS, write_models


REFERENCE = Path(__file__).resolve().parents[1] / "examples" / "reference.flac"
SENTENCE = "The quick brown fox jumps over the lazy dog today."  # 10 words
TWO_SENTENCES = SENTENCE + " It was a bright cold day, and the clocks were striking thirteen."
SEED = 0
RATE_HZ = 16000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(models: dict[str, Path], folder: Path, precision: str, workers: int | None
                 ) -> tuple[subprocess.Popen, str, float]:
    """-> (process, base URL, seconds until /readyz answered 200)."""
    port = free_port()
    exe = shutil.which("sv2tts", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-c", "from sv2tts.cli import main; main()"]
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port), "--precision", precision,
            "--synthesizer", str(models["synthesizer"]), "--vocoder", str(models["vocoder"]),
            "--voices-dir", str(folder / f"voices-{precision}")]
    cmd += ["--workers", str(workers)] if workers else []
    log = folder / f"server-{precision}.log"
    t = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while time.perf_counter() - t < 300:
        if proc.poll() is not None:
            raise SystemExit(f"sv2tts serve exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url, time.perf_counter() - t
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise SystemExit("sv2tts serve did not become ready in 300 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def clone(client: httpx.Client, url: str, voice: str) -> tuple[float, int]:
    """One whole-WAV request of SENTENCE -> (seconds, HTTP status; 0 = connection failed)."""
    t = time.perf_counter()
    try:
        status = client.post(f"{url}/v1/clone", data={"voice": voice, "text": SENTENCE, "seed": SEED}).status_code
    except httpx.HTTPError:
        status = 0
    return time.perf_counter() - t, status


def load(client: httpx.Client, url: str, voice: str, concurrency: int, n: int) -> dict:
    t = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda _: clone(client, url, voice), range(n)))
    wall = time.perf_counter() - t
    ok = [s for s, status in results if status == 200]
    return {"n": n, "failed": n - len(ok), "p50": float(np.percentile(ok, 50)) if ok else math.nan,
            "p95": float(np.percentile(ok, 95)) if ok else math.nan, "rpm": len(ok) / wall * 60}


def first_byte(url: str, voice: str) -> tuple[float, float, float, int]:
    """One streamed pcm request of TWO_SENTENCES -> (first byte s, total s, audio s, status)."""
    data = {"voice": voice, "text": TWO_SENTENCES, "seed": SEED, "stream": "true", "response_format": "pcm"}
    t = time.perf_counter()
    first, size = math.nan, 0
    with httpx.stream("POST", f"{url}/v1/clone", data=data, timeout=600) as r:
        for chunk in r.iter_bytes():
            if chunk and size == 0:
                first = time.perf_counter() - t
            size += len(chunk)
    return first, time.perf_counter() - t, size / 2 / RATE_HZ, r.status_code


def run_precision(models: dict[str, Path], folder: Path, precision: str, args) -> dict:
    proc, url, ready = start_server(models, folder, precision, args.workers)
    try:
        with httpx.Client(timeout=600) as client:
            with open(REFERENCE, "rb") as f:
                r = client.post(f"{url}/v1/voices", data={"name": "bench"}, files={"files": (REFERENCE.name, f)})
            voice = r.raise_for_status().json()["id"]
            t = time.perf_counter()
            warm = client.post(f"{url}/v1/clone", data={"voice": voice, "text": SENTENCE, "seed": SEED,
                                                        "response_format": "json"}).raise_for_status().json()
            print(f"\n[{precision}] ready in {ready:.1f} s; warm-up {time.perf_counter() - t:.1f} s for "
                  f"{warm['duration_s']:.2f} s of audio (server: {warm['timings']})")
            levels = {c: load(client, url, voice, c, max(args.requests, c)) for c in args.concurrency}
        streams = [first_byte(url, voice) for _ in range(1 if args.quick else 3)]
        rss = peak_rss_mib(proc.pid)
    finally:
        stop_server(proc)
    firsts = [s[0] for s in streams]
    print(f"{'concurrency':>11} {'requests':>8} {'failed':>6} {'p50 s':>7} {'p95 s':>7} {'req/min':>8}")
    for c, m in levels.items():
        print(f"{c:>11} {m['n']:>8} {m['failed']:>6} {m['p50']:>7.2f} {m['p95']:>7.2f} {m['rpm']:>8.2f}")
    print(f"first audio byte (stream, pcm, two sentences, {len(streams)} run(s)): median "
          f"{statistics.median(firsts):.2f} s, max {max(firsts):.2f} s; whole stream "
          f"{statistics.median(s[1] for s in streams):.2f} s for {streams[0][2]:.2f} s of audio; "
          f"statuses {[s[3] for s in streams]}")
    print(f"peak RSS of the server: {rss:.0f} MiB")
    failed = sum(m["failed"] for m in levels.values()) + sum(s[3] != 200 for s in streams)
    return {"levels": levels, "first": statistics.median(firsts), "failed": failed}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores usable ({os.cpu_count()} online)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precisions", default="int8,float32", help="comma-separated vocoder precisions")
    ap.add_argument("--concurrency", default=None, help="comma-separated levels (default 1,2,4; --quick 1,2)")
    ap.add_argument("--requests", type=int, default=None, help="requests per level (default 8; --quick 2)")
    ap.add_argument("--workers", type=int, default=None, help="passed to `sv2tts serve --workers`")
    ap.add_argument("--quick", action="store_true", help="smoke run: fewer requests and levels")
    args = ap.parse_args()
    args.concurrency = [int(c) for c in (args.concurrency or ("1,2" if args.quick else "1,2,4")).split(",")]
    args.requests = args.requests or (2 if args.quick else 8)
    print(f"machine: {machine()}; torch {torch.__version__}")
    print(f"text: {SENTENCE!r} (10 words); synthesizer stops after {TEN_WORDS} steps = {2 * TEN_WORDS} frames "
          f"= {2 * TEN_WORDS * 0.0125:.2f} s of mel; seed {SEED}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        models = write_models(Path(tmp))
        for precision in args.precisions.split(","):
            results[precision] = run_precision(models, Path(tmp), precision, args)
    print()
    if "int8" in results:
        first = results["int8"]["first"]
        print(f"target: int8 first audio byte < 2.5 s: {'yes' if first < 2.5 else 'NO'} ({first:.2f} s)")
    for precision, res in results.items():
        levels = res["levels"]
        if 1 in levels and 4 in levels:
            ok = levels[4]["rpm"] >= levels[1]["rpm"]
            print(f"target: {precision} throughput at 4 >= at 1: {'yes' if ok else 'NO'} "
                  f"({levels[4]['rpm']:.2f} vs {levels[1]['rpm']:.2f} req/min)")
        else:
            print(f"target: {precision} throughput at 4 >= at 1: not measured (levels {list(levels)})")
    failed = sum(res["failed"] for res in results.values())
    print(f"target: no request lost or failed: {'yes' if failed == 0 else f'NO ({failed} failed)'}")


if __name__ == "__main__":
    main()
