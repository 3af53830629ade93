"""WaveRNN generation engines: the loop that draws one sample per step for every fold.

An engine is chosen once per (vocoder, precision) by :func:`select_engine`:

* ``ReferenceEngine`` ("reference"): RTVC's loop op for op (``reference.py``); with the same
  seed it draws RTVC's very labels. Slow; the tests' oracle.
* ``NativeEngine`` (float32, bfloat16, int8 on x86-64 CPUs with AVX-512; the C extension
  ``sv2tts._native`` built at install time, sources in ``sv2tts/csrc/``, see core/native.py).
* ``TorchEngine`` (everywhere else: CUDA, other CPUs, an install without a C compiler, or
  ``SV2TTS_NATIVE=0``): the same step with public torch ops. It computes what the native engine
  computes for each precision (bfloat16: weights and layer inputs rounded to bfloat16; int8:
  weights quantized per row, layer inputs per fold row), in float32 arithmetic.

Both chunked engines share the step's algebra. Per chunk of ``CHUNK`` steps the folded
features are copied to time-major input rows [mel | a1 | a2 | a3 | a4]; each step then runs, for
every fold, the input layer's mel/aux part and GRU 1's whole input product from [mel | a1]
(through ``W_ih1 W_I``, formed once in float64: no nonlinearity lies between them, so only the
fed-back sample's column ``W_ih1 w_x`` is added per step), GRU 1, GRU 2 on [x1 | a2], fc1 on
[x1 + h2 | a3], fc2 on [y1 | a4] and fc3: eight matrix-vector products in the precision's
arithmetic (every layer input rounded as the precision does), plus the gates. Sampling is by
inverse CDF with one uniform per fold and step (``torch.rand`` per chunk from the caller's
generator): the same uniforms in every engine.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch

from ..core.native import PRECISION_CODES, as_buffer, native_module, pack_weights, quantize_rows
from ..core.runtime import ThreadChoice

from .model import WaveRNN
from .reference import generate_reference

log = logging.getLogger(__name__)

CHUNK = 256  # steps per chunk of input rows (and of uniforms drawn)

Progress = Callable[[int], None]
Streams = list  # [(torch.Generator, n_folds), ...]: the random stream of each run of folds


class ReferenceEngine:
    """RTVC's generation loop op for op (``precision="reference"``)."""

    name = "reference"
    precision = "reference"

    def __init__(self, model: WaveRNN) -> None:
        self.model = model

    def generate(self, mels: torch.Tensor, aux: torch.Tensor, generator: torch.Generator | Streams,
                 progress: Progress | None = None) -> torch.Tensor:
        """Labels (F, L) int64 from folded features mels (F, L, mels), aux (F, L, 4 aux); one
        random stream for all folds (RTVC's draws)."""
        if not isinstance(generator, torch.Generator):
            [(generator, _)] = generator
        return generate_reference(self.model, mels, aux, generator, progress)


def quantize_activations(x: torch.Tensor) -> torch.Tensor:
    """int8 layer inputs, per row asymmetric: x (F, K) -> s (q + c) with q = round(x / s - c).

    s = (max - min) / 254 and c = (max + min) / (2 s) put the row's range on [-127, 127];
    a constant row is represented exactly (s = 1, q = 0, c = its value).
    """
    lo, hi = x.amin(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)
    s = (hi - lo) / 254.0
    flat = s <= 0
    s = torch.where(flat, torch.ones_like(s), s)
    c = torch.where(flat, hi, (hi + lo) / (2.0 * s))
    q = torch.round(x * (1.0 / s) - c).clamp_(-127, 127)
    return s * (q + c)


class _Chunked:
    """The loop shared by the torch and native engines: chunks of input rows, state, sampling draws."""

    name = ""

    def __init__(self, model: WaveRNN, precision: str, device: torch.device) -> None:
        self.precision = precision
        self.device = device
        self.cfg = cfg = model.cfg
        self.nm, self.a, self.r = cfg.num_mels, cfg.aux_dims, cfg.rnn_dims
        f32 = {"device": device, "dtype": torch.float32}
        with torch.no_grad():
            w_i = model.I.weight.detach().to(**f32)  # (r, 1 + mels + aux)
            self.w_x = w_i[:, 0].contiguous()  # column of the fed-back sample
            self.b_in = model.I.bias.detach().to(**f32)
            w_ih1 = model.rnn1.weight_ih_l0.detach().to(**f32)
            # GRU 1's input product straight from [mel | a1] (no nonlinearity between I and
            # GRU 1): W_ih1 (W_I m + b_I) + b_ih1 = (W_ih1 W_I) m + (W_ih1 b_I + b_ih1)
            w64 = w_ih1.double()
            w_p1 = (w64 @ w_i[:, 1:].double()).float()  # (3r, mels + aux)
            self.b_p1 = (w64 @ self.b_in.double() + model.rnn1.bias_ih_l0.double()).float()
            self.u1 = (w_ih1 @ self.w_x).contiguous()  # W_ih1 w_x, (3r,)
            self.b_ih2 = model.rnn2.bias_ih_l0.detach().to(**f32)
            self.b_fc1 = model.fc1.bias.detach().to(**f32)
            self.b_fc2 = model.fc2.bias.detach().to(**f32)
            self.b_hh1 = model.rnn1.bias_hh_l0.detach().to(**f32)
            self.b_hh2 = model.rnn2.bias_hh_l0.detach().to(**f32)
            self.b_fc3 = model.fc3.bias.detach().to(**f32)
            # the eight matrices of the step, (N, K) float32; ih2, fc1, fc2 take [input | aux piece]
            self.weights = {"in": w_i[:, 1:], "p1": w_p1, "hh1": model.rnn1.weight_hh_l0,
                            "ih2": model.rnn2.weight_ih_l0, "hh2": model.rnn2.weight_hh_l0,
                            "fc1": model.fc1.weight, "fc2": model.fc2.weight, "fc3": model.fc3.weight}
            self.weights = {k: w.detach().to(**f32).contiguous() for k, w in self.weights.items()}
        # label -> fed-back sample, RTVC's float32 formula 2k / (n - 1) - 1
        k = torch.arange(cfg.n_classes, dtype=torch.float32)
        self.lut = (2 * k / (cfg.n_classes - 1.0) - 1.0).to(device)

    def _rows(self, mels: torch.Tensor, aux: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Input rows of steps [start, stop): (C, F, mels + 4 aux) time-major, [mel | a1 | a2 | a3 | a4]."""
        return torch.cat([mels[:, start:stop], aux[:, start:stop]], dim=2).transpose(0, 1).contiguous()

    def _run(self, state: list[torch.Tensor], rows: torch.Tensor, labels: torch.Tensor,
             u: torch.Tensor | None = None, forced: torch.Tensor | None = None,
             logits: torch.Tensor | None = None, threads: ThreadChoice | None = None) -> None:
        """Run one chunk of input ``rows`` (C, F, mels + 4 aux) in place on state [x (F, 1),
        h1 (F, r), h2 (F, r)]: writes labels (C, F), drawn with uniforms u (C, F, 1) or fed back
        from ``forced`` (C, F); logits (C, F, n) if given. ``threads`` chooses the chunk's thread
        count where the engine has its own threads."""
        raise NotImplementedError

    def _draw(self, steps: int, streams: list[tuple[torch.Generator, int]]) -> torch.Tensor:
        """The chunk's random numbers: one uniform per step and fold, (C, F, 1); each run of
        folds draws from its own generator, so a fold's numbers do not depend on its neighbours."""
        draws = [torch.rand(steps, n, 1, device=self.device, generator=g) for g, n in streams]
        return draws[0] if len(draws) == 1 else torch.cat(draws, dim=1)

    def _state(self, n_folds: int) -> list[torch.Tensor]:
        return [torch.zeros(n_folds, 1, device=self.device), torch.zeros(n_folds, self.r, device=self.device),
                torch.zeros(n_folds, self.r, device=self.device)]

    @torch.inference_mode()
    def generate(self, mels: torch.Tensor, aux: torch.Tensor, generator: torch.Generator | Streams,
                 progress: Progress | None = None) -> torch.Tensor:
        """Labels (F, L) int64 from folded features mels (F, L, mels), aux (F, L, 4 aux).

        ``generator``: one for all folds, or [(generator, n_folds), ...] covering the folds in
        order (several items generated together, each with its own random stream). Every
        fold's row is computed on its own, so its labels do not depend on the other folds.
        """
        n_folds, seq_len, _ = mels.shape
        streams = [(generator, n_folds)] if isinstance(generator, torch.Generator) else list(generator)
        if sum(n for _, n in streams) != n_folds:
            raise ValueError(f"random streams cover {sum(n for _, n in streams)} folds, not {n_folds}")
        state = self._state(n_folds)
        labels = torch.empty(seq_len, n_folds, dtype=torch.long, device=self.device)
        threads = ThreadChoice(torch.get_num_threads())  # fewer when a busy machine makes them slower
        for start in range(0, seq_len, CHUNK):
            stop = min(seq_len, start + CHUNK)
            u = self._draw(stop - start, streams)
            self._run(state, self._rows(mels, aux, start, stop), labels[start:stop], u=u, threads=threads)
            if progress is not None:
                progress(stop - start)
        return labels.t()

    @torch.inference_mode()
    def replay(self, mels: torch.Tensor, aux: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logits (L, F, n_classes) with the given labels (F, L) fed back (teacher forcing)."""
        n_folds, seq_len, _ = mels.shape
        state = self._state(n_folds)
        out = torch.empty(seq_len, n_folds, self.cfg.n_classes, device=self.device)
        for start in range(0, seq_len, CHUNK):
            stop = min(seq_len, start + CHUNK)
            forced = labels[:, start:stop].t().contiguous().to(self.device)
            self._run(state, self._rows(mels, aux, start, stop), torch.empty_like(forced),
                      forced=forced, logits=out[start:stop])
        return out


class TorchEngine(_Chunked):
    """The step with public torch ops (any device). ``sampling="race"`` instead draws
    ``torch.multinomial``'s own way (argmax of logits - log q, q ~ Exp(1), the very numbers it
    draws), so a seeded run follows the reference loop sample for sample (tests; slower)."""

    name = "torch"

    def __init__(self, model: WaveRNN, precision: str = "float32", device: torch.device | str = "cpu",
                 sampling: str = "cdf") -> None:
        if sampling not in ("cdf", "race"):
            raise ValueError(f"sampling={sampling!r}")
        super().__init__(model, precision, torch.device(device))
        self.sampling = sampling
        self.wt = {}  # (K, N): the weights as this precision sees them, transposed
        for name, w in self.weights.items():
            if precision == "int8":
                q, scale = quantize_rows(w)
                w = q * scale[:, None]
            elif precision == "bfloat16":
                w = w.to(torch.bfloat16).float()
            self.wt[name] = w.t().contiguous()

    def _linear(self, name: str, x: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
        """add + x @ W.T with the layer input rounded as the precision does."""
        if self.precision == "int8":
            x = quantize_activations(x)
        elif self.precision == "bfloat16":
            x = x.to(torch.bfloat16).float()
        return torch.addmm(add, x, self.wt[name])

    def _step(self, x, h1, h2, pi, p1, a2, a3, a4, add3):
        """x (F, 1) previous sample; h1, h2 (F, r); one step's input-layer terms pi (F, r), p1 (F, 3r)
        and aux pieces (F, aux) -> (fc3 out + add3, h1, h2)."""
        r = self.r
        gi = torch.addcmul(p1, x, self.u1)
        gh = self._linear("hh1", h1, self.b_hh1)
        rz = torch.sigmoid_(gi[:, :2 * r].add_(gh[:, :2 * r]))
        n = torch.tanh_(torch.addcmul(gi[:, 2 * r:], rz[:, :r], gh[:, 2 * r:]))
        h1 = torch.lerp(n, h1, rz[:, r:])
        x1 = torch.addcmul(pi, x, self.w_x).add_(h1)
        gi = self._linear("ih2", torch.cat([x1, a2], dim=1), self.b_ih2)
        gh = self._linear("hh2", h2, self.b_hh2)
        rz = torch.sigmoid_(gi[:, :2 * r].add_(gh[:, :2 * r]))
        n = torch.tanh_(torch.addcmul(gi[:, 2 * r:], rz[:, :r], gh[:, 2 * r:]))
        h2 = torch.lerp(n, h2, rz[:, r:])
        y = torch.relu_(self._linear("fc1", torch.cat([x1.add_(h2), a3], dim=1), self.b_fc1))
        y = torch.relu_(self._linear("fc2", torch.cat([y, a4], dim=1), self.b_fc2))
        return self._linear("fc3", y, add3), h1, h2

    def _draw(self, steps: int, streams: list[tuple[torch.Generator, int]]) -> torch.Tensor:
        if self.sampling == "cdf":
            return super()._draw(steps, streams)
        # torch.multinomial(p, 1)'s own draw: argmax(p / q) = argmax(logits - log q), q ~ Exp(1)
        draws = [torch.empty(steps, n, self.cfg.n_classes, device=self.device).exponential_(generator=g)
                 for g, n in streams]
        return torch.cat(draws, dim=1).log_().neg_()

    def _run(self, state, rows, labels, u=None, forced=None, logits=None, threads=None):
        x, h1, h2 = state
        n_cls, c, f = self.cfg.n_classes, rows.shape[0], rows.shape[1]
        race = forced is None and self.sampling == "race"
        # the sample-independent products of the whole chunk at once (each row rounded on its own)
        n_in, a = self.nm + self.a, self.a
        first = rows[:, :, :n_in].reshape(c * f, n_in)
        pi = self._linear("in", first, self.b_in).view(c, f, -1)
        p1 = self._linear("p1", first, self.b_p1).view(c, f, -1)
        a2, a3, a4 = (rows[:, :, n_in + i * a:n_in + (i + 1) * a] for i in range(3))
        for t in range(c):
            out, h1, h2 = self._step(x, h1, h2, pi[t], p1[t], a2[t], a3[t], a4[t],
                                     self.b_fc3 + u[t] if race else self.b_fc3)
            if logits is not None:
                logits[t] = out
            if forced is not None:
                k = forced[t]
            elif race:
                k = torch.argmax(out, dim=1)
            else:
                c = torch.cumsum(torch.softmax(out, dim=1), dim=1)
                k = torch.searchsorted(c, u[t].mul(c[:, -1:]), right=True).clamp_(max=n_cls - 1)[:, 0]
            labels[t] = k
            x = self.lut[k].view(-1, 1)
        state[:] = [x, h1, h2]


class NativeEngine(_Chunked):
    """The step in C (``sv2tts._native``), on torch's CPU threads."""

    name = "native"

    def __init__(self, model: WaveRNN, precision: str, lib) -> None:
        super().__init__(model, precision, torch.device("cpu"))
        self._lib = lib
        self._code = PRECISION_CODES[precision]
        cfg = self.cfg
        self._dims = (cfg.rnn_dims, cfg.fc_dims, cfg.n_classes, self.nm + self.a, self.a)
        r = cfg.rnn_dims

        def per_gate(name: str) -> list:  # GRU matrices split per gate (r, z, n)
            return [pack_weights(g, precision) for g in self.weights[name].split(r, dim=0)]

        mats = per_gate("hh1") + per_gate("ih2") + per_gate("hh2")
        mats += [pack_weights(self.weights[name], precision) for name in ("fc1", "fc2", "fc3", "in")]
        mats += per_gate("p1")
        self._mats = tuple(tuple(as_buffer(t) for t in m) for m in mats)
        self._vecs = tuple(as_buffer(v) for v in (self.u1, self.w_x, self.b_hh1, self.b_hh2, self.b_fc3, self.lut,
                                                  self.b_in, self.b_p1, self.b_ih2, self.b_fc1, self.b_fc2))
        del self.weights  # packed above; the float copies are not needed

    def _run(self, state, rows, labels, u=None, forced=None, logits=None, threads=None):
        n = threads.next() if threads is not None else torch.get_num_threads()
        start = time.perf_counter()
        self._lib.run(self._code, self._dims, self._mats, self._vecs, as_buffer(rows),
                      as_buffer(u), as_buffer(forced), *(as_buffer(s) for s in state), as_buffer(labels),
                      as_buffer(logits), n)
        if threads is not None:  # the numbers do not depend on the thread count, only the time
            threads.record(n, time.perf_counter() - start, len(labels))


def select_engine(model: WaveRNN, precision: str, device: torch.device):
    """The engine that runs ``precision`` fastest here; the choice and its reason are logged."""
    if precision == "reference":
        engine, why = ReferenceEngine(model), "RTVC's loop op for op"
    elif device.type != "cpu":
        engine, why = TorchEngine(model, precision, device), f"on {device}"
    else:
        lib, why = native_module(precision)
        if lib is not None:
            engine, why = NativeEngine(model, precision, lib), "C extension"
        else:
            engine = TorchEngine(model, precision, device)
    log.info("vocoder %s: %s engine (%s) on %s, %d torch threads", precision, engine.name, why, device,
             torch.get_num_threads())
    return engine
