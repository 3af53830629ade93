"""Vocoder stage: mel (80, T) on the synthesizer's scale -> 16 kHz waveform.

Two vocoders with one interface, ``vocode(mel, *, seed=None, ...) -> (n,) float32``:

* :class:`Vocoder`, RTVC's WaveRNN: ``Vocoder.load(path)`` reads RTVC's ``vocoder.pt``
  (weights_only); ``vocode`` runs RTVC's ``infer_waveform``: mel / 4, upsampling, batched
  (folded) sample-by-sample generation, cross-fade, mu-law decoding, de-emphasis, truncation to
  (T - 1) * 200 samples and the final 4000-sample fade-out. The generation engine for each
  precision is chosen once, on first use, and logged (engines.py).
* :class:`GriffinLim`: no checkpoint.
"""
from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Sequence

import numpy as np
import torch

from ..core.checkpoint import check_finite, check_keys, check_shapes, load_state_dict
from ..core.errors import CheckpointError, InputError
from ..core.runtime import PRECISIONS, check_precision, derive_seed, make_generator, progress_bar, resolve_device
from ..core.spectrogram import validate_mel
from .config import VocoderConfig
from .engines import select_engine
from .griffinlim import GriffinLim
from .model import WaveRNN
from .postprocess import Folds, fold_with_overlap, labels_to_samples, to_waveform
from .reference import burn_gru_cell_init

__all__ = ["PRECISIONS", "GriffinLim", "Vocoder", "VocoderConfig", "WaveRNN"]

log = logging.getLogger(__name__)

_MODEL_NAME = "vocoder"


class Vocoder:
    """A loaded WaveRNN vocoder. Reusable and safe to call from several threads at once.

    ``precision`` is the default of :meth:`vocode`: "float32", "bfloat16" / "int8" (faster,
    approximate) or "reference" (RTVC's loop op for op).
    """

    name = "wavernn"

    def __init__(self, model: WaveRNN, device: str | torch.device = "cpu", precision: str = "float32") -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.config: VocoderConfig = model.cfg
        self.precision = check_precision(precision)
        self._lock = threading.Lock()
        self._engines: dict[str, object] = {}  # precision -> engine, chosen once

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None,
             precision: str = "float32") -> "Vocoder":
        """Load an RTVC ``vocoder.pt`` (``{"model_state": ...}``, weights_only, strict keys).

        device: "cpu", "cuda", a torch.device, or None/"auto" for CUDA when available.
        Raises CheckpointError for a missing, truncated or foreign (e.g. synthesizer) file.
        """
        device = resolve_device(device)
        model = wavernn_from_state(load_state_dict(path, _MODEL_NAME, convert=True), path)
        log.info("loaded vocoder %s (%s parameters) on %s", path,
                 sum(p.numel() for p in model.parameters()), device)
        return cls(model, device, precision)

    def engine(self, precision: str | None = None):
        """The generation engine of ``precision`` (default: this vocoder's), built once."""
        precision = self.precision if precision is None else check_precision(precision)
        with self._lock:
            engine = self._engines.get(precision)
            if engine is None:
                engine = self._engines[precision] = select_engine(self.model, precision, self.device)
            return engine

    def vocode(self, mel: np.ndarray, *, seed: int | None = None, precision: str | None = None,
               batched: bool = True, target: int = 8000, overlap: int = 800,
               progress: bool | None = None) -> np.ndarray:
        """Mel (80, T) float, synthesizer scale [-4, 4] -> waveform ((T - 1) * 200,) float32, 16 kHz.

        seed: int for a reproducible draw (the same random stream as RTVC's
        ``torch.manual_seed(seed)`` before ``infer_waveform``), None for fresh entropy.
        precision: None for this vocoder's. batched: fold into chunks of target + 2 * overlap
        steps generated in parallel (RTVC's default). progress: tqdm bar; None = on a terminal.
        A 1-frame mel gives an empty array ((T - 1) * 200 = 0 samples).
        """
        return self.vocode_many([mel], seeds=[seed], precision=precision, batched=batched, target=target,
                                overlap=overlap, progress=progress)[0]

    def vocode_many(self, mels: Sequence[np.ndarray], *, seeds: Sequence[int | None] | None = None,
                    precision: str | None = None, batched: bool = True, target: int = 8000, overlap: int = 800,
                    progress: bool | None = None) -> list[np.ndarray]:
        """Several mels at once -> one waveform each, as ``vocode`` gives it alone.

        The folds of all items are generated together (up to ``_BATCH_FOLDS`` per pass), so
        each step's weight loads serve several items: faster than one call per item. Each item
        (and each group of 16 folds of a long one) draws from its own random stream and every
        fold is computed on its own, so an item's audio does not depend on what it is batched
        with. ``seeds``: one per mel (None: fresh entropy); the reference precision runs
        the items one after another.
        """
        mels = [validate_mel(m) for m in mels]
        seeds = [None] * len(mels) if seeds is None else list(seeds)
        if len(seeds) != len(mels):
            raise InputError(f"seeds: expected {len(mels)} (one per mel), got {len(seeds)}")
        target, overlap = _check_fold_args(target, overlap)
        engine = self.engine(precision)
        items = [_Item(self, mel, seed, engine, batched, target, overlap) for mel, seed in zip(mels, seeds)]
        parts = [part for item in items for part in item.parts]
        limit = 1 if engine.name == "reference" else _BATCH_FOLDS  # reference: RTVC's loop, one item at a time
        passes = _pack(parts, limit)
        total = sum(_steps(batch) for batch in passes)
        bar = progress_bar(progress, total, f"vocoding ({sum(p.count for p in parts)} folds)", unit="step")
        try:
            for batch in passes:
                self._generate(engine, batch, bar.update if bar else None)
        finally:
            if bar is not None:
                bar.close()
        return [item.waveform() for item in items]

    def _generate(self, engine, parts: list["_Part"], progress) -> None:
        """Generate the folds of ``parts`` in one pass; each part keeps its own labels."""
        steps = _steps(parts)
        feats, aux = [], []
        for part in parts:
            f, a = part.features()
            pad = (0, 0, 0, steps - f.shape[1])  # a short single-row item: steps past its end are dropped
            feats.append(torch.nn.functional.pad(f, pad))
            aux.append(torch.nn.functional.pad(a, pad))
        streams = [(p.generator, p.count) for p in parts]
        labels = engine.generate(torch.cat(feats), torch.cat(aux), streams, progress)
        first = 0
        for part in parts:
            part.labels = labels[first:first + part.count, :part.item.steps]
            first += part.count

    @torch.inference_mode()
    def upsample(self, mel: np.ndarray, *, batched: bool = True, target: int = 8000,
                 overlap: int = 800) -> tuple[torch.Tensor, torch.Tensor]:
        """Validated mel (80, T) -> folded features (F, L, 80) and aux (F, L, 128) on the device.

        mel / 4, 2 zero frames of padding on each side, UpsampleNetwork, then RTVC's fold
        (batched) or a single row of length 200 * T.
        """
        feats, aux = self._upsampled(mel)
        if batched:
            feats = torch.from_numpy(fold_with_overlap(feats.cpu().numpy(), target, overlap)).to(self.device)
            aux = torch.from_numpy(fold_with_overlap(aux.cpu().numpy(), target, overlap)).to(self.device)
        return feats.contiguous(), aux.contiguous()

    @torch.inference_mode()
    def _upsampled(self, mel: np.ndarray, start: int = 0, stop: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Validated mel (80, T) -> features (1, 200 n, 80) and aux (1, 200 n, 128) of its frames
        [start, stop) (n = stop - start; default all), unfolded.

        A part is computed from the mel frames around it (``_CONTEXT`` more on each side than
        the convolutions reach), so parts equal the same samples of the whole.
        """
        cfg = self.config
        stop = mel.shape[1] if stop is None else stop
        m = torch.from_numpy(mel / np.float32(cfg.mel_max_abs_value)).to(self.device)[None]
        m = torch.nn.functional.pad(m, (cfg.pad, cfg.pad))
        first, last = max(0, start - _CONTEXT), min(mel.shape[1], stop + _CONTEXT)
        feats, aux = self.model.upsample(m[:, :, first:last + 2 * cfg.pad])
        lo, hi = (start - first) * cfg.hop_length, (stop - first) * cfg.hop_length
        return feats[:, lo:hi], aux[:, lo:hi]

    def __repr__(self) -> str:
        return f"Vocoder(rnn_dims={self.config.rnn_dims}, device={str(self.device)!r}, precision={self.precision!r})"


_FOLD_GROUP = 16  # folds of one item upsampled together (8 s of audio at RTVC's target/overlap)
_BATCH_FOLDS = 32  # folds generated in one pass (of one item or several)
_CONTEXT = 4  # mel frames around a part being upsampled (the convolutions reach ~1.3 frames)


_MAX_FOLD = 160_000  # samples (10 s): a fold is allocated whole, padded to target + 2 overlap


def _check_fold_args(target: int, overlap: int) -> tuple[int, int]:
    for name, v, low in (("target", target, 1), ("overlap", overlap, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not low <= v <= _MAX_FOLD:
            raise InputError(f"{name}={v!r}: expected an int from {low} to {_MAX_FOLD}")
    return int(target), int(overlap)


def wavernn_from_state(state: dict[str, torch.Tensor], path: str | os.PathLike) -> WaveRNN:
    """A WaveRNN (on the CPU) holding ``state``, the model_state of the RTVC vocoder.pt ``path``;
    its sizes are read off the tensors (`Vocoder.load`, sv2tts.train). CheckpointError naming
    ``path`` for missing or unexpected keys, impossible sizes, wrong shapes or dtypes, NaN or inf."""
    expected = WaveRNN().state_dict()
    check_keys(state, _expected_keys(state, expected), path, _MODEL_NAME,
               optional=[k for k in state if k.endswith("num_batches_tracked")])
    try:
        cfg = VocoderConfig.from_state_dict(state)
    except (KeyError, IndexError) as e:
        raise CheckpointError(f"{path}: not an RTVC vocoder checkpoint (missing {e})") from None
    _check_config(cfg, path)
    model = WaveRNN(cfg)
    check_shapes(state, {k: tuple(v.shape) for k, v in model.state_dict().items()}, path, _MODEL_NAME)
    for k, v in state.items():
        if k not in ("step",) and not k.endswith("num_batches_tracked") and not v.is_floating_point():
            raise CheckpointError(f"{path}: vocoder tensor {k!r} has dtype {v.dtype}, expected float")
    check_finite(state, path, _MODEL_NAME)
    model.load_state_dict(state, strict=False)
    return model


def _expected_keys(state, default_state) -> list[str]:
    """RTVC's key set, with the number of res blocks taken from the file."""
    blocks = {k.split(".")[3] for k in state if k.startswith("upsample.resnet.layers.")}
    keys = [k for k in default_state if not k.startswith("upsample.resnet.layers.")]
    per_block = [k.split(".", 4)[4] for k in default_state if k.startswith("upsample.resnet.layers.0.")]
    return keys + [f"upsample.resnet.layers.{b}.{s}" for b in blocks if b.isdigit() for s in per_block]


def _check_config(cfg: VocoderConfig, path) -> None:
    scale = int(np.prod(cfg.upsample_factors)) if cfg.upsample_factors else 0
    if scale != cfg.hop_length or cfg.num_mels != 80 or 2 ** cfg.bits < 2 or cfg.res_out_dims % 4:
        raise CheckpointError(f"{path}: unsupported vocoder sizes (upsample {cfg.upsample_factors}, "
                              f"{cfg.num_mels} mels, {2 ** cfg.bits} classes); expected RTVC's layout")


class _Item:
    """One mel being vocoded: its folds, split into parts of at most ``_FOLD_GROUP`` folds, each
    with its own random stream (part 0: the item's generator, as RTVC's after its GRUCell draws;
    part j: a generator seeded from (seed, j)), so the parts may run in any passes."""

    def __init__(self, vocoder: Vocoder, mel: np.ndarray, seed: int | None, engine, batched: bool,
                 target: int, overlap: int) -> None:
        cfg = vocoder.config
        self.vocoder, self.mel = vocoder, mel
        self.batched, self.target, self.overlap = batched, target, overlap
        self.wave_len = (mel.shape[1] - 1) * cfg.hop_length
        total = mel.shape[1] * cfg.hop_length  # upsampled samples
        self.rows = Folds(total, target, overlap) if batched else Folds.single(total)
        # the chunked engines skip steps whose samples are all cut off by the truncation to
        # wave_len (possible with a single row only); the output is the same
        single = engine.name != "reference" and self.rows.count == 1
        self.steps = min(self.rows.length, self.wave_len) if single else self.rows.length
        self.parts: list[_Part] = []
        if self.wave_len == 0:
            return
        generator = make_generator(seed, vocoder.device)
        burn_gru_cell_init(vocoder.model, generator)
        group = self.rows.count if engine.name == "reference" else _FOLD_GROUP  # RTVC: all folds at once
        base = seed if seed is not None else secrets.randbelow(2 ** 32)
        for j, first in enumerate(range(0, self.rows.count, group)):
            g = generator if j == 0 else make_generator(derive_seed(base, j), vocoder.device)
            self.parts.append(_Part(self, first, min(self.rows.count, first + group), g))

    def waveform(self) -> np.ndarray:
        if self.wave_len == 0:
            return np.zeros(0, dtype=np.float32)
        cfg = self.vocoder.config
        labels = torch.cat([p.labels for p in self.parts])
        labels = torch.nn.functional.pad(labels, (0, self.rows.length - self.steps), value=cfg.n_classes // 2)
        samples = labels_to_samples(labels.cpu().numpy(), cfg.bits)
        wav = to_waveform(samples, batched=self.batched, target=self.target, overlap=self.overlap,
                          wave_len=self.wave_len, mu_law=cfg.mu_law, bits=cfg.bits,
                          preemphasis=cfg.preemphasis if cfg.apply_preemphasis else None,
                          fade_len=cfg.fade_out_samples)
        return wav.astype(np.float32)


class _Part:
    """Folds [first, last) of an item, their random stream, and (once generated) their labels."""

    def __init__(self, item: _Item, first: int, last: int, generator: torch.Generator) -> None:
        self.item, self.first, self.last, self.generator = item, first, last, generator
        self.count = last - first
        self.labels: torch.Tensor | None = None

    def features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Folded features (count, steps, 80) and aux (count, steps, 128), upsampling only the
        mel frames these folds cover (memory bounded by the part, whatever the item's length)."""
        item, rows, hop = self.item, self.item.rows, self.item.vocoder.config.hop_length
        start = self.first * rows.step // hop
        stop = min(item.mel.shape[1], -(-((self.last - 1) * rows.step + rows.length) // hop))
        return tuple(torch.from_numpy(rows.take(t.cpu().numpy(), self.first, self.last, start * hop)[:, :item.steps])
                     .to(item.vocoder.device) for t in item.vocoder._upsampled(item.mel, start, stop))


def _steps(parts: list[_Part]) -> int:
    """Steps of a pass: its longest item's (shorter single-row items are padded)."""
    return max(p.item.steps for p in parts)


def _pack(parts: list[_Part], limit: int) -> list[list[_Part]]:
    """Consecutive parts in passes of at most ``limit`` folds (a part is never split)."""
    passes, current, size = [], [], 0
    for part in parts:
        if current and size + part.count > limit:
            passes.append(current)
            current, size = [], 0
        current.append(part)
        size += part.count
    return passes + ([current] if current else [])
