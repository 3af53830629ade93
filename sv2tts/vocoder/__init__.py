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
import threading

import numpy as np
import torch

from ..core.checkpoint import check_finite, check_keys, check_shapes, load_state_dict
from ..core.errors import CheckpointError, InputError
from ..core.runtime import make_generator, progress_bar, resolve_device
from ..core.spectrogram import validate_mel
from .config import VocoderConfig
from .engines import PRECISIONS, select_engine
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
        state = load_state_dict(path, _MODEL_NAME)
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
        mel = validate_mel(mel)
        target, overlap = _check_fold_args(target, overlap)
        engine = self.engine(precision)
        cfg = self.config
        wave_len = (mel.shape[1] - 1) * cfg.hop_length
        if wave_len == 0:
            return np.zeros(0, dtype=np.float32)
        hop, total = cfg.hop_length, mel.shape[1] * cfg.hop_length  # upsampled samples
        rows = Folds(total, target, overlap) if batched else Folds.single(total)
        generator = make_generator(seed, self.device)
        burn_gru_cell_init(self.model, generator)
        # the chunked engines skip steps whose samples are all cut off by the truncation to
        # wave_len (possible with a single row only); the output is the same
        n = rows.length if engine.name == "reference" or rows.count > 1 else min(rows.length, wave_len)
        # folds are generated in groups, so memory is bounded whatever the length (RTVC's
        # reference loop draws for all folds at once: it keeps them in one group)
        group = rows.count if engine.name == "reference" else _FOLD_GROUP
        bar = progress_bar(progress, n * -(-rows.count // group), f"vocoding ({rows.count} folds)", unit="step")
        labels = []
        try:
            for first in range(0, rows.count, group):
                last = min(rows.count, first + group)
                # upsample only the frames these folds cover: memory bounded by the group
                start = first * rows.step // hop
                stop = min(mel.shape[1], -(-((last - 1) * rows.step + rows.length) // hop))
                feats, aux = (torch.from_numpy(rows.take(t.cpu().numpy(), first, last, start * hop)[:, :n])
                              .to(self.device) for t in self._upsampled(mel, start, stop))
                labels.append(engine.generate(feats, aux, generator, bar.update if bar else None))
        finally:
            if bar is not None:
                bar.close()
        labels = torch.nn.functional.pad(torch.cat(labels), (0, rows.length - n), value=cfg.n_classes // 2)
        samples = labels_to_samples(labels.cpu().numpy(), cfg.bits)
        wav = to_waveform(samples, batched=batched, target=target, overlap=overlap, wave_len=wave_len,
                          mu_law=cfg.mu_law, bits=cfg.bits,
                          preemphasis=cfg.preemphasis if cfg.apply_preemphasis else None,
                          fade_len=cfg.fade_out_samples)
        return wav.astype(np.float32)

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


_FOLD_GROUP = 16  # folds generated together (8 s of audio at RTVC's target/overlap)
_CONTEXT = 4  # mel frames around a part being upsampled (the convolutions reach ~1.3 frames)


def check_precision(precision) -> str:
    if precision not in PRECISIONS:
        raise InputError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision


_MAX_FOLD = 160_000  # samples (10 s): a fold is allocated whole, padded to target + 2 overlap


def _check_fold_args(target: int, overlap: int) -> tuple[int, int]:
    for name, v, low in (("target", target, 1), ("overlap", overlap, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not low <= v <= _MAX_FOLD:
            raise InputError(f"{name}={v!r}: expected an int from {low} to {_MAX_FOLD}")
    return int(target), int(overlap)


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
