"""RTVC-format training checkpoints: ``{"model_state", "optimizer_state"[, "step"]}``.

Files are read with ``torch.load(weights_only=True)`` (a pickle carrying code is refused) and
written atomically (temporary file + rename: a failed save, a full disk or Ctrl-C never
leaves a half-written checkpoint in place of the previous one). RTVC's own loaders accept
what `save_checkpoint` writes: ``load_state_dict(model_state)`` strictly, then
``optimizer.load_state_dict(optimizer_state)`` (Adam state i = i-th tensor of
``model.parameters()``).
"""
from __future__ import annotations

import logging
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.errors import CheckpointError
from .files import save_torch

log = logging.getLogger(__name__)


def read_checkpoint(path: str | os.PathLike, model_name: str) -> dict[str, Any]:
    """The whole checkpoint dict (CPU tensors). A bare state_dict becomes ``{"model_state": it}``.

    CheckpointError naming the file when it is missing, unreadable, unsafe or holds no state_dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {model_name} checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: refused: the file holds Python objects other than weights "
                              f"(possibly code); only plain tensor checkpoints are loaded") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt {model_name} checkpoint ({e})") from None
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"{path}: does not hold a {model_name} checkpoint")
    if "model_state" not in ckpt:
        ckpt = {"model_state": ckpt}
    state = ckpt["model_state"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: does not hold a {model_name} state_dict")
    return dict(ckpt)


def load_optimizer_state(optimizer: torch.optim.Optimizer, ckpt: Mapping[str, Any],
                         path: str | os.PathLike = "checkpoint") -> bool:
    """Load ``ckpt["optimizer_state"]`` into ``optimizer`` when the file has a usable one (RTVC:
    moments and step counts resume, and so does the stored lr). Returns whether it did."""
    state = ckpt.get("optimizer_state")
    if not state:  # absent, or a new model's empty placeholder
        return False
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: its optimizer state does not fit this model ({e})") from None
    return True


def save_checkpoint(path: str | os.PathLike, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, **extra: Any) -> Path:
    """Write ``{"model_state": model.state_dict(), "optimizer_state": ...}`` (+ ``extra`` keys,
    e.g. the encoder's ``step``) atomically; without an optimizer, model_state only (RTVC's
    ``save(path)``). Tensors are saved from the CPU, so a GPU run's file loads anywhere."""
    ckpt: dict[str, Any] = {"model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    if optimizer is not None:
        ckpt["optimizer_state"] = _to_cpu(optimizer.state_dict())
    ckpt.update(extra)
    path = save_torch(path, ckpt)
    log.debug("saved %s", path)
    return path


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj
