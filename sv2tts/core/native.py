"""The C extension ``sv2tts._native`` (sources in ``sv2tts/csrc/``), built at install time.

It holds the WaveRNN generation loop (used by the vocoder's native engine) and a small-batch
product (``Linear``, used by the synthesizer's decoder). Which kernels run is decided at
run time from the CPU's features; where the extension is missing, the CPU lacks a kernel's
instructions, or ``SV2TTS_NATIVE=0``, callers use torch instead.
"""
from __future__ import annotations

import os

import torch

PRECISION_CODES = {"float32": 0, "bfloat16": 1, "int8": 2}  # engine.h's PREC_*


def native_module(precision: str = "float32"):
    """(the extension module, "") when its ``precision`` kernel can run here, else (None, why)."""
    if os.environ.get("SV2TTS_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None, "disabled by SV2TTS_NATIVE"
    try:
        from .. import _native
    except ImportError as e:
        return None, f"the C extension is not installed ({e})"
    if not _native.supports(PRECISION_CODES[precision]):
        return None, f"this CPU lacks the instructions of the {precision} kernel"
    return _native, ""


def _pad16(n: int) -> int:
    return -(-n // 16) * 16


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 weights: W (N, K) -> (q (N, K) int values as float32 in [-127, 127], scale (N,)).

    Symmetric per output row: scale = max|w| / 127, q = round(w / scale); W ~ q * scale.
    """
    w = weight.detach().float()
    scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    return torch.round(w / scale[:, None]).clamp_(-127, 127), scale


def pack_weights(weight: torch.Tensor, precision: str) -> tuple[torch.Tensor, torch.Tensor | None,
                                                                    torch.Tensor | None]:
    """A matrix W (N, K) for the C kernels -> (packed, scale (Np,), row sums (Np,)).

    Rows and columns are padded with zeros to multiples of 16 (Np, Kp) and laid out in blocks
    of 16 rows, [Np/16][Kp/G][16][G] with G elements per 32 bits: float32 (G = 1), bfloat16
    (G = 2, rounded to nearest even) or int8 (G = 4, stored as q + 128, with the per-row scale
    and the rows' sums of q). scale and row sums are None except for int8.
    """
    w = weight.detach().float().cpu()
    n, k = w.shape
    np_, kp = _pad16(n), _pad16(k)
    scale = wsum = None
    if precision == "int8":
        q, s = quantize_rows(w)
        w = torch.zeros(np_, kp, dtype=torch.int16)
        w[:n, :k] = q.to(torch.int16)
        scale = torch.zeros(np_)
        scale[:n] = s
        wsum = w.sum(dim=1).float()
        w, group = (w + 128).to(torch.uint8), 4
    else:
        padded = torch.zeros(np_, kp)
        padded[:n, :k] = w
        w, group = (padded, 1) if precision == "float32" else (padded.to(torch.bfloat16).view(torch.int16), 2)
    blocks = w.reshape(np_ // 16, 16, kp // group, group).permute(0, 2, 1, 3).contiguous()
    return blocks, scale, wsum


def as_buffer(t: torch.Tensor | None):
    """A CPU tensor's memory as a numpy array (no copy), for the extension; None stays None."""
    if t is None:
        return None
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy()


class Linear:
    """y = x @ W.T + b on the CPU with the extension's kernel of ``precision`` (built once per W).

    For small batches (M = 1..16 rows) and large W, where the product is bound by reading W:
    bfloat16 / int8 weights are read 2x / 4x faster (int8 also quantises each row of x).
    Use ``Linear.create``, which returns None where the kernel cannot run here.
    """

    def __init__(self, lib, weight: torch.Tensor, bias: torch.Tensor, precision: str = "float32") -> None:
        self._lib = lib
        self._code = PRECISION_CODES[precision]
        self.n_out, self.n_in = weight.shape
        self._mat = tuple(as_buffer(t) for t in pack_weights(weight, precision))
        b = torch.zeros(_pad16(self.n_out))
        b[:self.n_out] = bias.detach().float().cpu()
        self._b = as_buffer(b)

    @classmethod
    def create(cls, weight: torch.Tensor, bias: torch.Tensor, precision: str = "float32") -> "Linear | None":
        lib, _ = native_module(precision)
        if lib is None or weight.device.type != "cpu" or weight.dtype != torch.float32:
            return None
        return cls(lib, weight, bias, precision)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (M, n_in) float32 CPU -> (M, n_out) (a view of a (M, n_out padded to 16) tensor)."""
        x = x.contiguous()
        y = torch.empty(x.shape[0], _pad16(self.n_out))
        self._lib.linear(self._code, (self.n_out, self.n_in), self._mat, self._b, as_buffer(x), as_buffer(y),
                         torch.get_num_threads())
        return y[:, :self.n_out]
