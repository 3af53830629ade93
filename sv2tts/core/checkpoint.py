"""Safe loading of RTVC-format checkpoints.

RTVC saves ``{"model_state": state_dict, "optimizer_state": ..., ["step": int]}`` with
``torch.save``. We always load with ``weights_only=True`` (a pickle that carries code is
refused) onto the CPU, keep only ``model_state`` and check it against the model's expected
keys so that a file of another model fails with a clear message.

Converted copies: RTVC's synthesizer.pt is 370 MB, two thirds of it optimizer state. With
``convert=True`` the first load of a file writes its ``model_state`` alone (bit-identical
tensors, with the source's sha256) to ``<cache>/converted/<source sha256>.pt``; later loads map
that file into memory (``mmap``) instead. A record beside it holds the source's path, size, times, inode and sha256:
the copy is used while the source's size, mtime, ctime and inode are unchanged (writing a
file's bytes always changes its ctime, which no program can set back), or, when they
changed, only if the source still hashes to the recorded sha256, and only if the copy names
that sha256 too; otherwise (or when the copy is truncated or unreadable) it is converted
again. The cache is best effort: when it cannot be written the source is read as before.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from .cache import model_cache_dir, sha256_file
from .errors import CheckpointError, InputError
from .files import write_atomic, write_bytes_atomic

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
_FORMAT = 1  # version of the converted file and its record


def load_state_dict(path: str | os.PathLike, model_name: str, *, convert: bool = False) -> StateDict:
    """Read ``model_state`` from an RTVC checkpoint file (weights_only, CPU).

    Accepts ``{"model_state": ...}`` dicts (RTVC's format) and bare state dicts.
    convert: use (and make on first load) the model-only copy in the cache (see above).
    Raises CheckpointError naming the file for every way a file can be unusable.
    """
    path = Path(path)
    _check_file(path, model_name)
    if not convert:
        return _read(path, model_name)
    record_path = model_cache_dir() / "converted" / f"{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]}.json"
    state = _read_converted(path, record_path)
    if state is None:
        identity = _identity(path)
        state = _read(path, model_name)
        _write_converted(path, record_path, state, identity)
    return state


def _check_file(path: Path, model_name: str) -> None:
    if not path.exists():
        raise CheckpointError(f"{path}: {model_name} checkpoint not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a {model_name} checkpoint")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a {model_name} checkpoint")


def _read(path: Path, model_name: str) -> StateDict:
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


def _identity(path: Path) -> dict:
    """What changes when a file's bytes change: size, mtime, ctime, inode and device."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
            "inode": st.st_ino, "device": st.st_dev}


def _read_converted(source: Path, record_path: Path) -> StateDict | None:
    """The converted copy of ``source`` when it is still valid (see the module), else None."""
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        weights = record_path.parent / record["weights"]
        if record.get("format") != _FORMAT or record.get("source") != str(source.resolve()) \
                or not weights.is_file():
            return None
        identity = _identity(source)
        if identity != record["identity"]:
            if identity["size"] != record["identity"]["size"] or \
                    sha256_file(source).hexdigest() != record["sha256"]:
                return None
            _write_json(record_path, {**record, "identity": identity})  # same bytes (copied, touched)
        saved = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
        state = saved["model_state"]
        if saved.get("source_sha256") != record["sha256"]:
            raise ValueError("it was converted from another file")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, pickle.UnpicklingError,
            zipfile.BadZipFile) as e:
        log.info("%s: converted copy not used (%s)", source, e)
        return None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return None
    log.debug("%s: read its converted copy %s", source, weights)
    return state


def _write_converted(source: Path, record_path: Path, state: StateDict, identity: dict) -> None:
    """Save ``state``, read from ``source`` while it had ``identity``, as its converted copy and
    record (atomically; best effort)."""
    try:
        digest = sha256_file(source).hexdigest()
        if _identity(source) != identity:
            return  # the source changed while it was read or hashed
        folder = record_path.parent
        weights = folder / f"{digest}.pt"
        write_atomic(weights, lambda f: torch.save({"format": _FORMAT, "source_sha256": digest,
                                                    "model_state": {k: v.clone() for k, v in state.items()}}, f))
        old = _old_weights(record_path)
        _write_json(record_path, {"format": _FORMAT, "source": str(source.resolve()), "identity": identity,
                                  "sha256": digest, "weights": weights.name})
        if old is not None and old != weights.name:
            (folder / old).unlink(missing_ok=True)  # the copy of the source's previous bytes
        log.info("%s: model weights converted to %s (loaded memory-mapped from now on)", source, weights)
    except (OSError, InputError) as e:
        log.debug("%s: cannot write a converted copy (%s)", source, e)


def _old_weights(record_path: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return json.loads(record_path.read_text(encoding="utf-8"))["weights"]
    return None


def _write_json(path: Path, data: dict) -> None:
    write_bytes_atomic(path, json.dumps(data, indent=1).encode("utf-8"))


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


def check_state(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                path: str | os.PathLike, model_name: str) -> None:
    """`check_keys` (BatchNorm ``num_batches_tracked`` counters may be absent), `check_shapes`
    and `check_finite` of ``state`` against ``expected``, the model's own state_dict."""
    optional = [k for k in expected if k.endswith("num_batches_tracked")]
    check_keys(state, expected, path, model_name, optional=optional)
    check_shapes(state, {k: tuple(v.shape) for k, v in expected.items()}, path, model_name)
    check_finite(state, path, model_name)


def check_finite(state: Mapping[str, torch.Tensor], path: str | os.PathLike, model_name: str) -> None:
    """Raise CheckpointError when a floating-point tensor holds NaN or inf (it would make every
    output NaN)."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: {model_name} tensor {key!r} holds NaN or inf")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
