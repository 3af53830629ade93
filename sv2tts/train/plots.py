"""Alignment plots as PNG files, written with numpy and zlib (no plotting library).

- `png_bytes`: an 8-bit grayscale (H, W) or RGB (H, W, 3) image -> PNG file bytes.
- `alignment_image`: a Tacotron attention matrix -> an RGB image laid out as RTVC's
  ``plot_alignment`` draws it (decoder steps left to right, encoder steps bottom to top,
  a viridis-like colour scale from 0 to the matrix's maximum).
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# viridis at 0, 1/4, 1/2, 3/4, 1 (RGB 0..255), linearly interpolated in between
_VIRIDIS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)


def _chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data, CRC-32 of type + data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(image: np.ndarray) -> bytes:
    """PNG file bytes of ``image``: uint8 (H, W) grayscale or (H, W, 3) RGB, H and W >= 1.

    No interlacing, filter type 0 (None) on every row, zlib level 6.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) \
            or min(image.shape[:2]) < 1:
        raise ValueError(f"png_bytes: expected uint8 (H, W) or (H, W, 3), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    color_type = 0 if image.ndim == 2 else 2
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    rows = np.ascontiguousarray(image).reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rows], axis=1).tobytes()
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape S) -> uint8 RGB (*S, 3) on the viridis-like scale."""
    x = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * (len(_VIRIDIS) - 1)
    low = np.minimum(x.astype(np.int64), len(_VIRIDIS) - 2)
    frac = (x - low)[..., None]
    rgb = _VIRIDIS[low] * (1 - frac) + _VIRIDIS[low + 1] * frac
    return np.rint(rgb).astype(np.uint8)


def alignment_image(attention: np.ndarray, cell: int = 4) -> np.ndarray:
    """Attention (decoder steps, encoder steps) -> uint8 RGB (encoder steps * cell,
    decoder steps * cell, 3): column t is decoder step t, the bottom row the first character;
    colours scaled to the matrix's maximum (an all-zero matrix is all dark)."""
    a = np.asarray(attention, dtype=np.float64)
    if a.ndim != 2 or min(a.shape) < 1 or not np.isfinite(a).all():
        raise ValueError(f"alignment_image: expected a finite 2-D matrix, got shape {a.shape}")
    peak = a.max()
    scaled = a / peak if peak > 0 else np.zeros_like(a)
    image = colormap(scaled.T[::-1])  # (encoder, decoder), first character at the bottom
    return np.repeat(np.repeat(image, cell, axis=0), cell, axis=1)


def alignment_png(attention: np.ndarray, max_side: int = 1200) -> bytes:
    """PNG bytes of `alignment_image`, each cell 1-4 pixels so no side exceeds ``max_side``
    (when the matrix allows)."""
    steps = max(np.shape(attention)[:2] or (1,))
    cell = int(np.clip(max_side // max(steps, 1), 1, 4))
    return png_bytes(alignment_image(attention, cell))
