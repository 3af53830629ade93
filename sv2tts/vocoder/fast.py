"""Fast WaveRNN generation loop (same model, same distribution, far fewer per-step costs).

What makes it fast, each measured (see ``benchmarks/vocoder_speed.py``):

* Everything that does not depend on the fed-back sample is taken out of the loop and done
  for a chunk of steps with large matrix multiplies (efficient at large M): the mel/aux part
  of the input layer ``I``, and (by linearity) the whole input-to-hidden product of GRU 1,
  ``W_ih1 (I_rest(m, a1) + x * w_x) = [W_ih1 I_rest] (m, a1) + x * (W_ih1 w_x)`` with the
  product ``W_ih1 I_rest`` formed once (a 1536 x 112 matrix); likewise the aux parts of
  GRU 2 / fc1 / fc2. The loop itself keeps 6 small multiplies per step
  (3 x 512x1536 + 3 x 512x512, 3.1 M of the step's 4.1 M multiply-adds) and no ``torch.cat``.
* Sampling by inverse CDF with one uniform per fold and step drawn per chunk (F draws per
  step instead of the F x 512 exponentials ``torch.multinomial`` draws): exact categorical
  sampling. ``sampling="race"`` instead reproduces ``torch.multinomial(p, 1)``'s own draw,
  ``argmax(p / q) = argmax(logits - log q)`` with ``q ~ Exp(1)`` from one ``exponential_`` call
  per chunk; those are the very numbers torch.multinomial would draw step by step, so a
  seeded run follows the reference loop sample for sample as long as float rounding does
  not flip an argmax (tests use this; it costs ~0.1 ms per step at 10 folds).
* Matrix multiplies through oneDNN with weights packed once (about 2x MKL ``addmm`` at
  M = 6..10 on this CPU), falling back to ``addmm`` where oneDNN is missing (CUDA, other CPUs).
* Weights pre-transposed and fused once per Vocoder, GRU gates done with few fused ops
  (``addmm``, ``addcmul``, ``lerp``), ``torch.inference_mode``.

Reduced precision (opt-in): "bfloat16" runs the matrix multiplies with bf16 weights and
inputs (oneDNN, AVX512-BF16), fp32 accumulation, state and gates; "int8" runs the loop's
multiplies with int8 weights (per output row) and dynamically quantized activations (the chunk
precompute stays float32). Both change the numbers slightly (the
distribution, not the procedure); their deviation is measured by tests and the benchmark.

The float32 and bfloat16 (oneDNN) loops run compiled with TorchScript (``compiled.py``: the
same ops in the same order, no Python work per step). The int8 loop runs in C where it can be
built (``native.py``, ``int8_loop.c``), else compiled with TorchScript (fbgemm).
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import torch

from . import native
from .compiled import compiled_steps
from .model import WaveRNN

log = logging.getLogger(__name__)

CHUNK = 256  # steps per precomputed chunk


def _mkldnn_ok(device: torch.device) -> bool:
    return (device.type == "cpu" and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


class _Linear:
    """``add + x @ W.T`` for a fixed weight W (N, K) in the chosen precision.

    Backends, fastest first (each measured at the loop's shapes, M = folds <= ~16):
    float32/bfloat16 on x86 CPU: oneDNN with the weight pre-packed once
    (``mkldnn._linear_pointwise``; about 2x MKL's ``addmm`` at M = 6..10). int8: fbgemm
    dynamic-quantized linear (int8 weights per output channel, activations quantized per
    call, VNNI). Elsewhere (CUDA, builds without oneDNN): ``addmm`` / bf16 ``mm``.
    """

    def __init__(self, weight: torch.Tensor, precision: str, device: torch.device) -> None:
        self.precision = precision
        w = weight.detach().float().contiguous().to(device)
        self.kind = "addmm"
        if precision == "int8":
            if device.type != "cpu":
                raise ValueError("int8 generation is only available on CPU")
            scale = (w.abs().amax(dim=1).clamp_min(1e-12) / 127.0).double()
            with warnings.catch_warnings():  # quantized tensor creation is deprecated, still supported
                warnings.simplefilter("ignore")
                qw = torch.quantize_per_channel(w, scale, torch.zeros_like(scale, dtype=torch.long),
                                                0, torch.qint8)
                self.packed = torch.ops.quantized.linear_prepack(qw, None)
            self.kind = "int8"
        elif _mkldnn_ok(device):
            dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
            self.packed = torch.ops.mkldnn._reorder_linear_weight(w.to(dtype), 16)
            self.kind = "mkldnn"
        else:
            dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
            self.wt = w.t().contiguous().to(dtype)  # (K, N)

    def __call__(self, x: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
        """add + x @ W.T as float32; x (F, K) float32, add (N,) or (F, N) float32."""
        if self.kind == "mkldnn":
            if self.precision == "float32":
                if add.dim() == 1:
                    return torch.ops.mkldnn._linear_pointwise(x, self.packed, add, "none", [], "")
                return torch.ops.mkldnn._linear_pointwise.binary(x, add, self.packed, None, "add")
            y = torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), self.packed, None, "none", [], "")
            return y.float().add_(add)
        if self.kind == "int8":
            return torch.ops.quantized.linear_dynamic(x, self.packed, False).add_(add)
        if self.precision == "float32":
            return torch.addmm(add, x, self.wt)
        return torch.mm(x.to(torch.bfloat16), self.wt).float().add_(add)


class FastGenerator:
    """Prepared fast loop for one model and precision. Immutable after construction (thread-safe)."""

    def __init__(self, model: WaveRNN, precision: str = "float32",
                 device: torch.device | str = "cpu", sampling: str = "cdf") -> None:
        if precision not in ("float32", "bfloat16", "int8"):
            raise ValueError(f"precision={precision!r}")
        if sampling not in ("cdf", "race"):
            raise ValueError(f"sampling={sampling!r}")
        self.precision = precision
        self.sampling = sampling
        self.device = device = torch.device(device)
        self.cfg = cfg = model.cfg
        nm, a = cfg.num_mels, cfg.aux_dims
        r = cfg.rnn_dims
        with torch.no_grad():
            w_i = model.I.weight.detach().float()  # (r, 1 + mels + aux)
            self.w_x = w_i[:, 0].contiguous()  # (r,)
            self.w_i_rest = w_i[:, 1:].contiguous()  # (r, mels + aux)
            self.b_i = model.I.bias.detach().float().clone()
            w_ih1 = model.rnn1.weight_ih_l0.detach().float()
            # GRU 1's input product straight from the mel/aux rows (no nonlinearity between I and
            # GRU 1): W_ih1 (W_I m + b_I) + b_ih1 = (W_ih1 W_I) m + (W_ih1 b_I + b_ih1), K = 112
            # instead of 512; products formed in float64
            w64 = w_ih1.double()
            self.w_p1 = (w64 @ self.w_i_rest.double()).float()  # (3r, mels + aux)
            self.b_p1 = (w64 @ self.b_i.double() + model.rnn1.bias_ih_l0.double()).float()
            self.u1 = (w_ih1 @ self.w_x).contiguous()  # W_ih1 w_x, (3r,)
            w_ih2 = model.rnn2.weight_ih_l0.detach().float()
            self.w_ih2_aux = w_ih2[:, r:].contiguous()
            self.b_ih2 = model.rnn2.bias_ih_l0.detach().float().clone()
            self.w_fc1_aux = model.fc1.weight.detach().float()[:, r:].contiguous()
            self.b_fc1 = model.fc1.bias.detach().float().clone()
            fc = cfg.fc_dims
            self.w_fc2_aux = model.fc2.weight.detach().float()[:, fc:].contiguous()
            self.b_fc2 = model.fc2.bias.detach().float().clone()
            self.hh1 = _Linear(model.rnn1.weight_hh_l0, precision, device)
            self.b_hh1 = model.rnn1.bias_hh_l0.detach().float().clone()
            self.ih2 = _Linear(w_ih2[:, :r], precision, device)
            self.hh2 = _Linear(model.rnn2.weight_hh_l0, precision, device)
            self.b_hh2 = model.rnn2.bias_hh_l0.detach().float().clone()
            self.fc1 = _Linear(model.fc1.weight[:, :r], precision, device)
            self.fc2 = _Linear(model.fc2.weight[:, :fc], precision, device)
            self.fc3 = _Linear(model.fc3.weight, precision, device)
            self.b_fc3 = model.fc3.bias.detach().float().clone()
        self.nm, self.a, self.r = nm, a, r
        # label -> fed-back sample, RTVC's float32 formula 2k/(n-1) - 1
        k = torch.arange(cfg.n_classes, dtype=torch.float32)
        self.lut = (2 * k / (cfg.n_classes - 1.0) - 1.0).to(device)
        # int8 on CPU: the C loop where it builds (native.py), else the TorchScript loop
        self.native = None
        if precision == "int8" and (lib := native.load()) is not None:
            self.native = native.Int8Loop(lib, {
                "hh1": model.rnn1.weight_hh_l0, "ih2": w_ih2[:, :r], "hh2": model.rnn2.weight_hh_l0,
                "fc1": model.fc1.weight[:, :r], "fc2": model.fc2.weight[:, :fc], "fc3": model.fc3.weight,
                "u1": self.u1, "w_x": self.w_x, "b_hh1": self.b_hh1, "b_hh2": self.b_hh2,
                "b_fc3": self.b_fc3, "lut": self.lut})

    # ------------------------------------------------------------------ chunk precompute
    def _precompute(self, mels: torch.Tensor, aux: torch.Tensor, start: int, stop: int):
        """Sample-independent terms for steps [start, stop): time-major (C, F, N) float32."""
        c, f = stop - start, mels.shape[0]
        nm, a = self.nm, self.a
        # one copy to time-major rows [mel | aux]; every GEMM below reads a view of it
        rows = torch.cat([mels[:, start:stop].transpose(0, 1), aux[:, start:stop].transpose(0, 1)],
                         dim=2).view(c * f, -1)
        pi = torch.addmm(self.b_i, rows[:, :nm + a], self.w_i_rest.t())  # (C*F, r)
        p1 = torch.addmm(self.b_p1, rows[:, :nm + a], self.w_p1.t())  # (C*F, 3r)
        q2 = torch.addmm(self.b_ih2, rows[:, nm + a:nm + 2 * a], self.w_ih2_aux.t())
        q3 = torch.addmm(self.b_fc1, rows[:, nm + 2 * a:nm + 3 * a], self.w_fc1_aux.t())
        q4 = torch.addmm(self.b_fc2, rows[:, nm + 3 * a:], self.w_fc2_aux.t())
        return [t.view(c, f, -1) for t in (pi, p1, q2, q3, q4)]

    # ------------------------------------------------------------------ one step
    def _step(self, x, h1, h2, pi, p1, q2, q3, q4, add3):
        """x (F, 1) previous sample; h1, h2 (F, r); chunk rows (F, .) -> (fc3 out + add3, h1, h2)."""
        r = self.r
        gi = torch.addcmul(p1, x, self.u1)
        gh = self.hh1(h1, self.b_hh1)
        rz = torch.sigmoid_(gi[:, :2 * r].add_(gh[:, :2 * r]))
        n = torch.tanh_(torch.addcmul(gi[:, 2 * r:], rz[:, :r], gh[:, 2 * r:]))
        h1 = torch.lerp(n, h1, rz[:, r:])
        x1 = torch.addcmul(pi, x, self.w_x).add_(h1)
        gi = self.ih2(x1, q2)
        gh = self.hh2(h2, self.b_hh2)
        rz = torch.sigmoid_(gi[:, :2 * r].add_(gh[:, :2 * r]))
        n = torch.tanh_(torch.addcmul(gi[:, 2 * r:], rz[:, :r], gh[:, 2 * r:]))
        h2 = torch.lerp(n, h2, rz[:, r:])
        y = torch.relu_(self.fc1(x1.add_(h2), q3))
        y = torch.relu_(self.fc2(y, q4))
        return self.fc3(y, add3), h1, h2

    def _compiled(self):
        """(compiled chunk loop, dense weights, packed int8 weights) for this precision, or None."""
        layers = (self.hh1, self.ih2, self.hh2, self.fc1, self.fc2, self.fc3)
        if self.precision == "int8":
            weights = ([], [m.packed for m in layers])
        elif self.hh1.kind == "mkldnn":  # float32 or bfloat16
            weights = ([m.packed for m in layers], [])
        else:
            return None
        loop = compiled_steps()
        return None if loop is None else (loop, *weights)

    # ------------------------------------------------------------------ loops
    @torch.inference_mode()
    def generate(self, mels: torch.Tensor, aux: torch.Tensor, generator: torch.Generator,
                 progress: Callable[[int], None] | None = None) -> torch.Tensor:
        """Sample labels (F, L) int64 from folded features mels (F, L, mels), aux (F, L, 4a).

        Randomness from ``generator``: "cdf" sampling draws one uniform per fold and step and
        inverts the cumulative distribution (exact categorical sampling); "race" draws
        q ~ Exp(1) per class exactly as torch.multinomial does (same stream as the reference
        loop, slower).
        """
        n_folds, seq_len, _ = mels.shape
        dev = mels.device
        h1 = torch.zeros(n_folds, self.r, device=dev)
        h2 = torch.zeros(n_folds, self.r, device=dev)
        x = torch.zeros(n_folds, 1, device=dev)
        labels = torch.empty(seq_len, n_folds, dtype=torch.long, device=dev)
        lut = self.lut.view(-1, 1)
        n_cls = self.cfg.n_classes
        for start in range(0, seq_len, CHUNK):
            stop = min(seq_len, start + CHUNK)
            pi, p1, q2, q3, q4 = self._precompute(mels, aux, start, stop)
            if self.sampling == "race":
                # torch.multinomial(p, 1)'s own draw: argmax(p / q), q ~ Exp(1), same stream
                noise = torch.empty(stop - start, n_folds, n_cls, device=dev)
                noise.exponential_(generator=generator).log_().neg_().add_(self.b_fc3)
                for t in range(stop - start):
                    noisy, h1, h2 = self._step(x, h1, h2, pi[t], p1[t], q2[t], q3[t], q4[t], noise[t])
                    k = torch.argmax(noisy, dim=1)
                    labels[start + t] = k
                    x = lut[k]
            elif self.native is not None:
                u = torch.rand(stop - start, n_folds, 1, device=dev, generator=generator)
                self.native.run(x, h1, h2, [pi, p1, q2, q3, q4], labels[start:stop], u=u)
            elif (compiled := self._compiled()) is not None:
                # the same steps, compiled: no Python work per step
                loop, dense, packed = compiled
                u = torch.rand(stop - start, n_folds, 1, device=dev, generator=generator)
                x, h1, h2 = loop(x, h1, h2, pi, p1, q2, q3, q4, u, self.u1, self.w_x, self.b_hh1,
                                 self.b_hh2, self.b_fc3, dense, packed, lut, labels, start, self.r, n_cls)
            else:
                # inverse CDF: one uniform per fold and step (F draws instead of F * 512)
                u = torch.rand(stop - start, n_folds, 1, device=dev, generator=generator)
                for t in range(stop - start):
                    logits, h1, h2 = self._step(x, h1, h2, pi[t], p1[t], q2[t], q3[t], q4[t], self.b_fc3)
                    c = torch.cumsum(torch.softmax(logits, dim=1), dim=1)
                    k = torch.searchsorted(c, u[t].mul(c[:, -1:]), right=True).clamp_(max=n_cls - 1)
                    labels[start + t] = k[:, 0]
                    x = lut[k[:, 0]]
            if progress is not None:
                progress(stop - start)
        return labels.t()

    @torch.inference_mode()
    def replay(self, mels: torch.Tensor, aux: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (L, F, n_classes) with fed-back ``labels`` (F, L) (tests)."""
        n_folds, seq_len, _ = mels.shape
        dev = mels.device
        h1 = torch.zeros(n_folds, self.r, device=dev)
        h2 = torch.zeros(n_folds, self.r, device=dev)
        x = torch.zeros(n_folds, 1, device=dev)
        out = torch.empty(seq_len, n_folds, self.cfg.n_classes, device=dev)
        lut = self.lut.view(-1, 1)
        for start in range(0, seq_len, CHUNK):
            stop = min(seq_len, start + CHUNK)
            pi, p1, q2, q3, q4 = self._precompute(mels, aux, start, stop)
            if self.native is not None:
                forced = labels[:, start:stop].t().contiguous()
                self.native.run(x, h1, h2, [pi, p1, q2, q3, q4], torch.empty_like(forced),
                                forced=forced, logits=out[start:stop])
                continue
            for t in range(stop - start):
                out[start + t], h1, h2 = self._step(x, h1, h2, pi[t], p1[t], q2[t], q3[t], q4[t], self.b_fc3)
                x = lut[labels[:, start + t]]
        return out
