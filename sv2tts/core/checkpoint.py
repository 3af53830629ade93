"""Safe loading of RTVC-format checkpoints.

RTVC saves ``{"model_state": state_dict, "optimizer_state": ..., ["step": int]}`` with
``torch.save``. We always load with ``weights_only=True`` (a pickle that carries code is
refused) onto the CPU, keep only ``model_state`` and check it against the model's expected
keys so that a file of another model fails with a clear message.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from .errors import CheckpointError

StateDict = dict[str, torch.Tensor]


def load_state_dict(path: str | os.PathLike, model_name: str) -> StateDict:
    """Read ``model_state`` from an RTVC checkpoint file (weights_only, CPU).

    Accepts ``{"model_state": ...}`` dicts (RTVC's format) and bare state dicts.
    Raises CheckpointError naming the file for every way a file can be unusable.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: {model_name} checkpoint not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a {model_name} checkpoint")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a {model_name} checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Weights only" in str(e):
            raise CheckpointError(
                f"{path}: refused: the file contains Python objects other than weights "
                f"(possibly code); only plain tensor checkpoints are loaded"
            ) from None
        raise CheckpointError(f"{path}: not a readable {model_name} checkpoint ({_first_line(e)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{path}: truncated or corrupt {model_name} checkpoint ({_first_line(e)})"
        ) from None
    state = ckpt.get("model_state", ckpt) if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: does not hold a {model_name} state_dict")
    return dict(state)


def check_keys(
    state: Mapping[str, torch.Tensor],
    expected: Iterable[str],
    path: str | os.PathLike,
    model_name: str,
    optional: Iterable[str] = (),
) -> None:
    """Raise CheckpointError unless ``state`` has exactly the ``expected`` keys.

    Keys in ``optional`` may be absent (e.g. BatchNorm ``num_batches_tracked``).
    """
    expected = set(expected)
    missing = expected - set(state) - set(optional)
    unexpected = set(state) - expected
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {len(missing)} keys, e.g. {sorted(missing)[0]!r}")
        if unexpected:
            detail.append(f"unexpected {len(unexpected)} keys, e.g. {sorted(unexpected)[0]!r}")
        raise CheckpointError(
            f"{path}: not an RTVC {model_name} checkpoint ({'; '.join(detail)})"
        )


def check_shapes(
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, tuple[int, ...]],
    path: str | os.PathLike,
    model_name: str,
) -> None:
    """Raise CheckpointError when a tensor's shape differs from ``expected``."""
    for key, shape in expected.items():
        if key in state and tuple(state[key].shape) != tuple(shape):
            raise CheckpointError(
                f"{path}: {model_name} tensor {key!r} has shape {tuple(state[key].shape)}, "
                f"expected {tuple(shape)}"
            )


def check_finite(state: Mapping[str, torch.Tensor], path: str | os.PathLike, model_name: str) -> None:
    """Raise CheckpointError when a floating-point tensor holds NaN or inf (it would make every
    output NaN)."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: {model_name} tensor {key!r} holds NaN or inf")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
