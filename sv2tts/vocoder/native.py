"""The int8 generation loop in C (``int8_loop.c``, AVX-512 VNNI), built on first use.

Torch runs the int8 step as ~30 small ops whose fixed costs (about 15 us per quantized linear
call at the loop's shapes) dominate; the C loop does the same step with no per-op overhead:
about 2.5x faster than the compiled TorchScript int8 loop on 2 cores. It is compiled once per
CPU with the system C compiler (``$CC``, else ``cc``; ``-O3 -march=native``, ~1 s) into
``<cache>/build/`` and loaded with ctypes. Where that fails (no compiler, no AVX-512 VNNI,
not x86-64 Linux/macOS, ``SV2TTS_NATIVE=0``), ``load()`` returns None and the TorchScript
loop runs instead; the reason is logged.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("int8_loop.c")
FLAGS = ["-O3", "-march=native", "-ffast-math", "-fPIC", "-shared", "-fopenmp"]

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False


class _QMat(ctypes.Structure):
    _fields_ = [("w", ctypes.c_void_p), ("scale", ctypes.c_void_p), ("wsum", ctypes.c_void_p)]


class _Net(ctypes.Structure):
    _fields_ = ([(n, ctypes.c_int32) for n in ("r", "fc", "n_cls", "rp", "fcp", "ncp")]
                + [("hh1", _QMat * 3), ("ih2", _QMat * 3), ("hh2", _QMat * 3),
                   ("fc1", _QMat), ("fc2", _QMat), ("fc3", _QMat)]
                + [(n, ctypes.c_void_p) for n in ("u1", "w_x", "b_hh1", "b_hh2", "b_fc3", "lut")])


class _Job(ctypes.Structure):
    _fields_ = ([("net", ctypes.POINTER(_Net))]
                + [(n, ctypes.c_int32) for n in ("n_folds", "n_steps", "n_threads")]
                + [(n, ctypes.c_void_p) for n in ("pi", "p1", "q2", "q3", "q4", "u", "forced",
                                                 "x", "h1", "h2", "labels", "logits")])


def _cpu_id() -> str:
    """What -march=native depends on (a build is only reused on the same kind of CPU)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def _build() -> Path:
    """Compile int8_loop.c for this CPU (cached); raises RuntimeError/OSError on failure."""
    from ..models import cache_dir

    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise RuntimeError("no C compiler found (set $CC)")
    src = SOURCE.read_bytes()
    key = hashlib.sha256(src + " ".join([cc, *FLAGS]).encode() + _cpu_id().encode()).hexdigest()[:16]
    out = cache_dir() / "build" / f"int8_loop-{key}{'.dylib' if sys.platform == 'darwin' else '.so'}"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.stem, suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        res = subprocess.run([cc, *FLAGS, str(SOURCE), "-o", tmp], capture_output=True, text=True,
                             timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"{cc} failed: {(res.stderr or res.stdout).strip()[-500:]}")
        os.replace(tmp, out)  # atomic: concurrent builders never load a half-written file
        log.info("built the int8 loop: %s", out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def load() -> ctypes.CDLL | None:
    """The compiled loop, or None (and the reason logged once) where it cannot be built."""
    global _lib, _tried
    with _lock:
        if _tried:
            return _lib
        _tried = True
        if os.environ.get("SV2TTS_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
            log.info("native int8 loop disabled by SV2TTS_NATIVE")
            return None
        if platform.machine().lower() not in ("x86_64", "amd64") or os.name != "posix":
            log.info("native int8 loop: needs x86-64 (AVX-512 VNNI); using TorchScript")
            return None
        try:
            lib = ctypes.CDLL(str(_build()))
            lib.sv2tts_wavernn_int8.argtypes = [ctypes.POINTER(_Job)]
            lib.sv2tts_wavernn_int8.restype = ctypes.c_int
            _lib = lib
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            log.info("native int8 loop unavailable (%s); using TorchScript", e)
        return _lib


def _ceil(n: int, m: int) -> int:
    return -(-n // m) * m


def pack(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """int8 weights for the C loop: W (N, K) float -> (packed uint8, scale (Np,), row sums (Np,)).

    Per-row symmetric scale max|w|/127; rows and columns padded with zeros to multiples of 16
    (the C loop pads its activations to the same widths); bytes are w + 128 laid out
    [Np/16][Kp/4][16][4].
    """
    w = weight.detach().float().cpu()
    n, k = w.shape
    scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int16)
    qp = torch.zeros(_ceil(n, 16), _ceil(k, 16), dtype=torch.int16)
    qp[:n, :k] = q
    packed = (qp + 128).to(torch.uint8).reshape(qp.shape[0] // 16, 16, qp.shape[1] // 4, 4)
    sp = torch.zeros(qp.shape[0])
    sp[:n] = scale
    return packed.permute(0, 2, 1, 3).contiguous(), sp, qp.sum(dim=1).float()


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class Int8Loop:
    """The C loop prepared for one model: packed weights + the ``_Net`` pointing at them.

    ``weights``: name -> float tensor for hh1, ih2, hh2 (3r, r), fc1 (fc, r), fc2 (fc, fc),
    fc3 (n, fc), u1, b_hh1, b_hh2 (3r), w_x (r), b_fc3 (n), lut (n). Immutable (thread-safe).
    """

    def __init__(self, lib: ctypes.CDLL, weights: dict[str, torch.Tensor]) -> None:
        self.lib = lib
        r = weights["hh1"].shape[1]
        fc = weights["fc2"].shape[0]
        n = weights["fc3"].shape[0]
        keep: list[torch.Tensor] = []  # every buffer the C side points at stays alive with self

        def qmat(w: torch.Tensor) -> _QMat:
            packed, scale, wsum = pack(w)
            keep.extend((packed, scale, wsum))
            return _QMat(packed.data_ptr(), scale.data_ptr(), wsum.data_ptr())

        def vec(name: str) -> int:
            t = weights[name].detach().float().cpu().contiguous()
            keep.append(t)
            return t.data_ptr()

        gates = {name: [qmat(g) for g in weights[name].split(r, dim=0)] for name in ("hh1", "ih2", "hh2")}
        self.net = _Net(r, fc, n, _ceil(r, 16), _ceil(fc, 16), _ceil(n, 16),
                        (_QMat * 3)(*gates["hh1"]), (_QMat * 3)(*gates["ih2"]), (_QMat * 3)(*gates["hh2"]),
                        qmat(weights["fc1"]), qmat(weights["fc2"]), qmat(weights["fc3"]),
                        vec("u1"), vec("w_x"), vec("b_hh1"), vec("b_hh2"), vec("b_fc3"), vec("lut"))
        self._keep = keep

    def run(self, x: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor, pre: list[torch.Tensor],
            labels: torch.Tensor, u: torch.Tensor | None = None, forced: torch.Tensor | None = None,
            logits: torch.Tensor | None = None) -> None:
        """Run len(pre[0]) steps in place on the state x (F, 1), h1, h2 (F, r) (float32, contiguous).

        pre: the chunk's pi, p1, q2, q3, q4, each (C, F, .) contiguous float32. Writes labels
        (C, F) int64; samples with uniforms u (C, F, 1), or feeds back ``forced`` (C, F) labels;
        writes the logits (C, F, n) when given.
        """
        steps, folds = pre[0].shape[:2]
        for t in (x, h1, h2, labels, *pre, u, forced, logits):
            assert t is None or (t.is_contiguous() and t.device.type == "cpu")
        job = _Job(ctypes.pointer(self.net), folds, steps, max(1, torch.get_num_threads()),
                   *[_ptr(t) for t in pre], _ptr(u), _ptr(forced), _ptr(x), _ptr(h1), _ptr(h2),
                   _ptr(labels), _ptr(logits))
        if self.lib.sv2tts_wavernn_int8(ctypes.byref(job)) != 0:
            raise MemoryError("int8 vocoder loop: out of memory or threads")
