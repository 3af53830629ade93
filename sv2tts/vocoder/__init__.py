"""WaveRNN vocoder stage: mel (80, T) on the synthesizer's scale -> 16 kHz waveform.

``Vocoder.load(path)`` reads RTVC's ``vocoder.pt`` (weights_only); ``Vocoder.vocode(mel)`` runs
RTVC's ``infer_waveform``: mel / 4, upsampling, batched (folded) sample-by-sample generation,
cross-fade, mu-law decoding, de-emphasis, truncation to (T - 1) * 200 samples and the final
4000-sample fade-out.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import warnings

import numpy as np
import torch

from ..checkpoint import check_keys, check_shapes, load_state_dict
from ..errors import CheckpointError, InputError
from .config import VocoderConfig
from .model import WaveRNN
from .postprocess import fold_with_overlap, labels_to_samples, to_waveform
from .reference import burn_gru_cell_init, generate_reference

__all__ = ["Vocoder", "VocoderConfig", "WaveRNN", "vocode", "PRECISIONS"]

log = logging.getLogger(__name__)

#: accepted ``precision=`` values. "reference" is RTVC's loop op for op (slow, exact).
PRECISIONS = ("float32", "bfloat16", "int8", "reference")
_MODEL_NAME = "vocoder"
_SCALE_WARN = 2.0  # warn when max |mel| exceeds this many times RTVC's 4.0


class Vocoder:
    """A loaded WaveRNN vocoder. Reusable and safe to call from several threads at once."""

    def __init__(self, model: WaveRNN, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.config: VocoderConfig = model.cfg
        self._lock = threading.Lock()
        self._fast: dict[str, object] = {}  # precision -> prepared fast generator (immutable)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> "Vocoder":
        """Load an RTVC ``vocoder.pt`` (``{"model_state": ...}``, weights_only, strict keys).

        device: "cpu", "cuda", a torch.device, or None for CUDA when available else CPU.
        Raises CheckpointError for a missing, truncated or foreign (e.g. synthesizer) file.
        """
        device = _resolve_device(device)
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
            if v.is_floating_point() and not bool(torch.isfinite(v).all()):
                raise CheckpointError(f"{path}: vocoder tensor {k!r} holds NaN or inf")
        model.load_state_dict(state, strict=False)
        log.info("loaded vocoder %s (%s parameters) on %s", path,
                 sum(p.numel() for p in model.parameters()), device)
        return cls(model, device)

    # ------------------------------------------------------------------ inference
    def vocode(self, mel: np.ndarray, *, batched: bool = True, target: int = 8000, overlap: int = 800,
               seed: int | None = None, precision: str = "float32",
               progress: bool | None = None) -> np.ndarray:
        """Mel (80, T) float, synthesizer scale [-4, 4] -> waveform ((T - 1) * 200,) float32, 16 kHz.

        batched: fold into chunks of target + 2*overlap steps generated in parallel (RTVC's
        default). seed: int for a reproducible draw (the same random stream as RTVC's
        ``torch.manual_seed(seed)`` before ``infer_waveform``), None for fresh entropy.
        precision: "float32" (fast loop, default), "bfloat16" / "int8" (faster, approximate),
        "reference" (RTVC's loop op for op). progress: tqdm bar; None = only on a terminal.
        A 1-frame mel gives an empty array ((T - 1) * 200 = 0 samples).
        """
        mel = validate_mel(mel)
        target, overlap = _check_fold_args(batched, target, overlap)
        if precision not in PRECISIONS:
            raise InputError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
        if precision == "int8" and self.device.type != "cpu":
            raise InputError(f"precision='int8' is only available on CPU, not {self.device}")
        cfg = self.config
        n_frames = mel.shape[1]
        wave_len = (n_frames - 1) * cfg.hop_length
        if wave_len == 0:
            return np.zeros(0, dtype=np.float32)
        mels, aux = self.upsample(mel, batched=batched, target=target, overlap=overlap)
        generator = self._generator(seed)
        seq_len = mels.shape[1]
        # the fast loops skip steps whose samples are all cut off by the truncation to
        # wave_len (possible with a single row only); the output is the same
        n = seq_len if precision == "reference" or mels.shape[0] > 1 else min(seq_len, wave_len)
        bar = _progress_bar(progress, n, mels.shape[0])
        try:
            update = bar.update if bar is not None else None
            if precision == "reference":
                labels = generate_reference(self.model, mels, aux, generator, update)
            else:
                labels = self._fast_generator(precision).generate(mels[:, :n], aux[:, :n], generator, update)
                labels = torch.nn.functional.pad(labels, (0, seq_len - n), value=cfg.n_classes // 2)
        finally:
            if bar is not None:
                bar.close()
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
        cfg = self.config
        m = torch.from_numpy(mel / np.float32(cfg.mel_max_abs_value)).to(self.device)[None]
        m = torch.nn.functional.pad(m, (cfg.pad, cfg.pad))
        feats, aux = self.model.upsample(m)
        if batched:
            feats = torch.from_numpy(fold_with_overlap(feats.cpu().numpy(), target, overlap)).to(self.device)
            aux = torch.from_numpy(fold_with_overlap(aux.cpu().numpy(), target, overlap)).to(self.device)
        return feats.contiguous(), aux.contiguous()

    def _generator(self, seed: int | None) -> torch.Generator:
        g = torch.Generator(device=self.device)
        if seed is None:
            g.seed()
        else:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
                raise InputError(f"seed={seed!r}: expected an int or None")
            g.manual_seed(int(seed))
        burn_gru_cell_init(self.model, g)
        return g

    def _fast_generator(self, precision: str):
        with self._lock:
            gen = self._fast.get(precision)
            if gen is None:
                from .fast import FastGenerator
                gen = FastGenerator(self.model, precision, self.device)
                self._fast[precision] = gen
            return gen


def vocode(mel: np.ndarray, *, vocoder: "Vocoder | str | os.PathLike", batched: bool = True,
           target: int = 8000, overlap: int = 800, seed: int | None = None, precision: str = "float32",
           progress: bool | None = None) -> np.ndarray:
    """Stage-level helper: ``vocoder`` is a loaded :class:`Vocoder` or a checkpoint path."""
    if isinstance(vocoder, (str, os.PathLike)):
        vocoder = Vocoder.load(vocoder)
    if not isinstance(vocoder, Vocoder):
        raise InputError(f"vocoder={vocoder!r}: expected a Vocoder or a checkpoint path")
    return vocoder.vocode(mel, batched=batched, target=target, overlap=overlap, seed=seed,
                          precision=precision, progress=progress)


# ---------------------------------------------------------------------- helpers
def validate_mel(mel, num_mels: int = 80, max_abs: float = 4.0) -> np.ndarray:
    """Check a mel and return it as C-contiguous float32 (num_mels, T).

    InputError for a non-array, wrong shape or orientation, non-finite values or no frame;
    a UserWarning when the values are far outside RTVC's [-max_abs, max_abs] scale.
    """
    if isinstance(mel, torch.Tensor):
        mel = mel.detach().cpu().numpy()
    try:
        arr = np.asarray(mel)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        raise InputError(f"mel: expected a numpy array of shape ({num_mels}, T), got {type(mel).__name__}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"mel: expected a real float array of shape ({num_mels}, T), got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise InputError(f"mel: expected shape ({num_mels}, T) (mel-major), got {arr.ndim}-D shape {arr.shape}")
    if arr.shape[0] != num_mels:
        if arr.shape[1] == num_mels:
            raise InputError(f"mel: got shape {arr.shape}, which looks like (T, {num_mels}); "
                             f"expected ({num_mels}, T) (mel-major): pass mel.T")
        raise InputError(f"mel: expected shape ({num_mels}, T), got {arr.shape}")
    if arr.shape[1] == 0:
        raise InputError(f"mel: empty (shape {arr.shape}); expected ({num_mels}, T) with T >= 1")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise InputError("mel: contains NaN or inf values")
    peak = float(np.abs(arr).max())
    if peak > _SCALE_WARN * max_abs:
        warnings.warn(f"mel: values reach {peak:.3g}, far outside RTVC's scale [-{max_abs:g}, {max_abs:g}] "
                      f"(synthesizer output); the audio will be distorted", UserWarning, stacklevel=3)
    return arr


def _check_fold_args(batched: bool, target: int, overlap: int) -> tuple[int, int]:
    for name, v, low in (("target", target, 1), ("overlap", overlap, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise InputError(f"{name}={v!r}: expected an int >= {low}")
    return int(target), int(overlap)


def _resolve_device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device={device!r}: not a torch device (use 'cpu' or 'cuda')") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={device!r}: CUDA is not available on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"device={device!r}: only 'cpu' and 'cuda' are supported")
    return dev


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


def _progress_bar(progress: bool | None, steps: int, folds: int):
    show = sys.stderr.isatty() if progress is None else bool(progress)
    if not show:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=steps, desc=f"vocoding ({folds} fold{'s' if folds != 1 else ''})",
                unit="step", leave=False)
