"""The alignment PNG writer: files decoded back by hand (signature, chunks, CRCs, pixels)."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from sv2tts.train.plots import PNG_SIGNATURE, alignment_image, alignment_png, colormap, png_bytes


def decode_png(data: bytes) -> tuple[dict, np.ndarray]:
    """A minimal PNG reader for what png_bytes writes (8-bit, filter 0): (IHDR fields, pixels)."""
    assert data[:8] == PNG_SIGNATURE
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"] and chunks[2][1] == b""
    width, height, depth, color, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    header = dict(width=width, height=height, depth=depth, color=color, compression=comp, filter=filt,
                  interlace=interlace)
    channels = {0: 1, 2: 3}[color]
    raw = np.frombuffer(zlib.decompress(chunks[1][1]), dtype=np.uint8).reshape(height, 1 + width * channels)
    assert not raw[:, 0].any()  # filter type 0 on every row
    pixels = raw[:, 1:].reshape(height, width, channels)
    return header, pixels[..., 0] if channels == 1 else pixels


def test_grayscale_png_literal():
    image = np.array([[0, 128, 255], [7, 8, 9]], dtype=np.uint8)
    data = png_bytes(image)
    # signature and the IHDR chunk, byte for byte: 3 x 2, depth 8, grayscale, no interlace
    assert data[:33] == (b"\x89PNG\r\n\x1a\n" b"\x00\x00\x00\x0dIHDR" b"\x00\x00\x00\x03\x00\x00\x00\x02"
                         b"\x08\x00\x00\x00\x00" + struct.pack(">I", zlib.crc32(
                             b"IHDR\x00\x00\x00\x03\x00\x00\x00\x02\x08\x00\x00\x00\x00")))
    assert data[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82"
    header, pixels = decode_png(data)
    assert header == dict(width=3, height=2, depth=8, color=0, compression=0, filter=0, interlace=0)
    np.testing.assert_array_equal(pixels, image)


def test_rgb_png_round_trip():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    header, pixels = decode_png(png_bytes(image))
    assert (header["width"], header["height"], header["color"]) == (7, 5, 2)
    np.testing.assert_array_equal(pixels, image)


@pytest.mark.parametrize("bad", [np.zeros((2, 2), np.float32), np.zeros((2, 2, 4), np.uint8),
                                 np.zeros((0, 3), np.uint8)])
def test_png_refuses_other_images(bad):
    with pytest.raises(ValueError, match="png_bytes"):
        png_bytes(bad)


def test_alignment_layout_and_colours():
    attention = np.zeros((4, 3))  # 4 decoder steps, 3 characters
    attention[0, 0] = 0.5  # the peak: first step on the first character
    attention[3, 2] = 0.25
    image = alignment_image(attention, cell=2)
    assert image.shape == (3 * 2, 4 * 2, 3)
    np.testing.assert_array_equal(image[-1, 0], [253, 231, 37])  # bottom-left: the maximum (top of the scale)
    np.testing.assert_array_equal(image[0, -1], colormap(0.5))  # top-right: half the maximum
    np.testing.assert_array_equal(image[0, 0], [68, 1, 84])  # zero: the bottom of the scale
    np.testing.assert_array_equal(colormap(np.array([0.0, 0.5, 1.0])), [[68, 1, 84], [33, 145, 140], [253, 231, 37]])
    _, pixels = decode_png(alignment_png(attention))
    np.testing.assert_array_equal(pixels, alignment_image(attention, cell=4))
    assert decode_png(alignment_png(np.ones((600, 50))))[0]["width"] == 1200  # 2 px per step under 1200
