"""Public synthesizer API: `Synthesizer.load(path)` and `synthesize(texts, embeddings)`.

Text + speaker embedding -> mel (80, T) float32 on RTVC's scale (the Tacotron postnet output,
trailing frames below the stop threshold trimmed as RTVC does).

Each text is synthesised as one utterance; splitting long text into sentences and joining
the mels is the pipeline's job (sv2tts.pipeline). Differences from RTVC, on purpose:
- a text's mel does not depend on the other texts of its batch (see inference.py); with
  prenet_dropout=True the dropout masks are still drawn for the whole batch, so only
  dropout-off output is batch-independent;
- the trailing-frame trim keeps at least one frame (RTVC can return an empty mel).
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..core.checkpoint import check_state, load_state_dict
from ..core.errors import CheckpointError, InputError, TextError
from ..core.dsp import SAMPLE_RATE
from ..core.runtime import check_precision, make_generator, resolve_device
from .config import SynthesizerConfig
from .inference import FastTacotron
from .model import Tacotron
from .text import SYMBOLS, text_to_sequence

logger = logging.getLogger(__name__)

MODEL_NAME = "synthesizer"


class Synthesizer:
    """A loaded Tacotron (RTVC synthesizer.pt); reusable and safe to call from several threads.

    ``precision`` is the default of :meth:`synthesize`: "float32" (RTVC's numbers; "reference"
    is the same here), or "bfloat16" / "int8" (the decoder LSTMs' weights in that precision:
    faster, approximate).
    """

    sample_rate: int = SAMPLE_RATE  # Hz of the audio its mels describe

    def __init__(self, model: Tacotron, path: str | os.PathLike | None = None, precision: str = "float32"):
        self._model = model.eval()
        self.precision = check_precision(precision)
        self._lock = threading.Lock()
        self._engines: dict[str, FastTacotron] = {}  # precision -> engine, built on first use
        self._path = Path(path) if path is not None else None

    def engine(self, precision: str | None = None) -> FastTacotron:
        """The decoding engine of ``precision`` (default: this synthesizer's), built once."""
        precision = self.precision if precision is None else check_precision(precision)
        if precision == "reference":
            precision = "float32"
        with self._lock:
            engine = self._engines.get(precision)
            if engine is None:
                engine = self._engines[precision] = FastTacotron(self._model, precision)
        return engine

    # ----------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
             precision: str = "float32") -> "Synthesizer":
        """Load an RTVC `synthesizer.pt` (weights_only). Sizes and r are read off the file.

        Raises CheckpointError for a missing, truncated, unsafe or other model's file.
        """
        device = resolve_device(device)
        model = tacotron_from_state(load_state_dict(path, MODEL_NAME, convert=True), path, device)
        logger.info("loaded %s %s (step %d, r=%d, %.2fM parameters) on %s", MODEL_NAME, path,
                    int(model.step.reshape(-1)[0]), model.r,
                    sum(p.numel() for p in model.parameters()) / 1e6, device)
        return cls(model, path, precision)

    # -------------------------------------------------------------------------- properties
    @property
    def config(self) -> SynthesizerConfig:
        return self._model.cfg

    @property
    def r(self) -> int:
        """Reduction factor: mel frames per decoder step (from the checkpoint)."""
        return self._model.r

    @property
    def device(self) -> torch.device:
        return self._model.encoder_proj.weight.device

    @property
    def model(self) -> Tacotron:
        """The underlying torch module (RTVC's structure; `generate_rtvc` is RTVC's loop)."""
        return self._model

    @property
    def path(self) -> Path | None:
        return self._path

    def __repr__(self) -> str:
        c = self.config
        return (f"Synthesizer(path={str(self._path)!r}, r={self.r}, embed_dims={c.embed_dims}, "
                f"lstm_dims={c.lstm_dims}, device={str(self.device)!r})")

    text_to_sequence = staticmethod(text_to_sequence)

    # -------------------------------------------------------------------------- synthesis
    def synthesize(self, texts: str | Sequence[str], embeddings, *, seed: int | None = None,
                   prenet_dropout: bool = True, max_frames: int = 2000, precision: str | None = None
                   ) -> np.ndarray | list[np.ndarray]:
        """Text(s) + speaker embedding(s) -> mel(s) (80, T) float32, RTVC scale; one pass per text.

        texts: a str (-> one array) or a list of str (-> a list, same order), synthesised in
            batches of ``config.batch_size``.
        embeddings: (256,) for every text, or (n_texts, 256), float, finite.
        seed: seeds the pre-net dropout masks (a private generator); None = random.
        prenet_dropout: RTVC keeps dropout on at inference (natural speech); False makes the
            output deterministic and batch-independent.
        max_frames: cap on decoded frames per text (RTVC's 2000); a text reaching it logs a
            warning naming it.
        precision: None for this synthesizer's (see the class).
        """
        single = isinstance(texts, str)
        text_list = _check_texts(texts)
        spk = _check_embeddings(embeddings, len(text_list), self.config.speaker_embedding_size)
        max_frames = _check_positive_int(max_frames, "max_frames")
        engine = self.engine(precision)
        generator = make_generator(seed, self.device) if prenet_dropout else None
        ids = [text_to_sequence(t) for t in text_list]
        mels: list[np.ndarray] = []
        batch_size = self.config.batch_size
        for start in range(0, len(ids), batch_size):
            results = engine.generate(ids[start:start + batch_size], spk[start:start + batch_size],
                                            max_frames=max_frames, generator=generator)
            for i, res in enumerate(results, start):
                if not res.stopped:
                    logger.warning("text %r: reached max_frames=%d without its stop token (the end "
                                   "may be cut or babbled)", _short(text_list[i]), max_frames)
                mel = res.mel.detach().to("cpu", torch.float32).numpy()
                mels.append(trim_trailing(mel, self.config.stop_threshold))
        return mels[0] if single else mels


def is_pronounceable(text: str) -> bool:
    """True when the cleaned text has at least one letter the model knows."""
    return any(SYMBOLS[k].isalpha() for k in text_to_sequence(text))


def trim_trailing(mel: np.ndarray, threshold: float = SynthesizerConfig.stop_threshold
                  ) -> np.ndarray:
    """Drop trailing frames whose every bin is below `threshold` (RTVC), keeping >= 1 frame."""
    frame_max = mel.max(axis=0)
    keep = len(frame_max)
    while keep > 1 and frame_max[keep - 1] < threshold:
        keep -= 1
    return np.ascontiguousarray(mel[:, :keep])


# ------------------------------------------------------------------------------ helpers
def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    elif isinstance(texts, (list, tuple)):
        if not texts:
            raise TextError("texts: empty list, nothing to synthesise")
        texts = list(texts)
    else:
        raise TextError(f"text: expected a str or a list of str, got {type(texts).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TextError(f"text {i}: expected a str, got {type(t).__name__}")
        if not t.strip():
            raise TextError(f"text {i}: empty or whitespace-only text")
        if not is_pronounceable(t):
            raise TextError(f"text {i} {_short(t)!r}: nothing to synthesise: none of its "
                            f"characters is a letter the model knows")
    return texts


def _check_embeddings(embeddings, n_texts: int, size: int) -> torch.Tensor:
    """(size,) or (n_texts, size) finite floats -> (n_texts, size) float32 CPU tensor."""
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().cpu().numpy()
    try:
        arr = np.asarray(embeddings)
    except (ValueError, TypeError) as e:
        raise InputError(f"embedding: not an array of numbers ({e})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"embedding: expected float values, got dtype {arr.dtype}")
    if arr.ndim == 1 and arr.shape[0] == size:
        arr = np.broadcast_to(arr, (n_texts, size))
    elif arr.ndim == 2 and arr.shape == (1, size):
        arr = np.broadcast_to(arr, (n_texts, size))
    elif not (arr.ndim == 2 and arr.shape == (n_texts, size)):
        raise InputError(f"embedding: expected shape ({size},) or ({n_texts}, {size}) for "
                         f"{n_texts} text(s), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError("embedding: contains NaN or infinite values")
    return torch.from_numpy(np.array(arr, dtype=np.float32))


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name}: expected an int >= 1, got {value!r}")
    return int(value)


def tacotron_from_state(state: Mapping[str, torch.Tensor], path: str | os.PathLike,
                        device: torch.device = torch.device("cpu")) -> Tacotron:
    """A Tacotron (eval mode, on ``device``) holding ``state``, the model_state of the RTVC
    synthesizer.pt ``path``; its sizes and r are read off the tensors (`Synthesizer.load`,
    sv2tts.train). CheckpointError naming ``path`` for missing or unexpected keys, wrong shapes,
    NaN or inf, too few symbol embeddings, or decoder.r outside 1..max_r."""
    try:
        cfg = SynthesizerConfig.from_state_dict(state)
    except (KeyError, IndexError, ValueError, RuntimeError):
        cfg = SynthesizerConfig()  # check_state below names what is missing
    if not _sane(cfg):
        cfg = SynthesizerConfig()
    model = Tacotron(cfg)  # on the CPU: 0.15 s of random init, replaced below (building it on the
    # meta device instead costs a one-time 1 s import of torch's reference ops on first use)
    expected = model.state_dict()
    check_state(state, expected, path, MODEL_NAME)
    if cfg.num_chars < len(SYMBOLS):
        raise CheckpointError(f"{path}: {MODEL_NAME} has {cfg.num_chars} symbol embeddings; RTVC's text "
                              f"front end needs {len(SYMBOLS)}")
    if not 1 <= cfg.r <= cfg.max_r:
        raise CheckpointError(f"{path}: {MODEL_NAME} reduction factor decoder.r = {cfg.r} "
                              f"is outside 1..{cfg.max_r}")
    tensors = {}
    for key, ref in expected.items():
        tensor = state.get(key)
        if tensor is None:  # an optional BatchNorm counter
            tensor = torch.zeros((), dtype=ref.dtype)
        tensors[key] = tensor.to(device=device, dtype=ref.dtype).contiguous()
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval()


def _sane(cfg: SynthesizerConfig) -> bool:
    """True when the sizes read off a file can build a model (else check against defaults)."""
    return (min(cfg.num_chars, cfg.embed_dims, cfg.encoder_dims, cfg.decoder_dims,
                cfg.postnet_dims, cfg.lstm_dims, cfg.n_mels, cfg.max_r, cfg.encoder_K,
                cfg.postnet_K, cfg.speaker_embedding_size, cfg.lsa_filters, cfg.lsa_kernel) > 0
            and cfg.encoder_dims % 2 == 0 and cfg.postnet_dims % 2 == 0)


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
