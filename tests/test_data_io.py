"""Image reading and writing: conversions to 8-bit RGB with a note, clear errors, 16-bit PNG."""

from __future__ import annotations

import logging
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from dfpir.data import ImageReadError, read_image, read_image_raw, write_image
from dfpir.data.io import read_png16


def png16_with_filters(array: np.ndarray, filters: list[int]) -> bytes:
    """Encode uint16 HxWxC with the given per-row PNG filters (cycled), as libpng might."""
    height, width, channels = array.shape
    bpp = 2 * channels
    rows = array.astype(">u2").reshape(height, width * channels).view(np.uint8).astype(np.int64)
    prev = np.zeros(width * bpp, np.int64)
    encoded = []
    for y in range(height):
        line, kind = rows[y], filters[y % len(filters)]
        left = np.concatenate([np.zeros(bpp, np.int64), line[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        if kind == 0:
            out = line
        elif kind == 1:
            out = line - left
        elif kind == 2:
            out = line - prev
        elif kind == 3:
            out = line - ((left + prev) >> 1)
        else:
            p = left + prev - up_left
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - up_left)
            out = line - np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, up_left))
        encoded.append(bytes([kind]) + (out & 255).astype(np.uint8).tobytes())
        prev = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(encoded)))
        + chunk(b"IEND", b"")
    )


def test_rgb_png_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", image)
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (7, 9, 3)
    np.testing.assert_array_equal(out, image)


def test_float_and_tensor_inputs_are_written_as_8_bit(tmp_path):
    write_image(tmp_path / "f.png", np.full((4, 5, 3), 0.5, np.float32))
    assert (read_image(tmp_path / "f.png") == 128).all()
    write_image(tmp_path / "t.png", torch.ones(3, 4, 5) * 2.0)  # CHW, clipped to 1
    assert (read_image(tmp_path / "t.png") == 255).all()


@pytest.mark.parametrize(
    ("mode", "make", "note"),
    [
        ("L", lambda: np.full((6, 8), 77, np.uint8), "grayscale"),
        ("RGBA", lambda: np.full((6, 8, 4), 77, np.uint8), "alpha"),
        ("I;16", lambda: np.full((6, 8), 77 * 257, np.uint16), "16-bit"),
    ],
)
def test_gray_rgba_16bit_convert_with_note(tmp_path, caplog, mode, make, note):
    path = tmp_path / f"{mode.replace(';', '')}.png"
    Image.fromarray(make()).save(path)
    with caplog.at_level(logging.INFO, logger="dfpir.data.io"):
        out = read_image(path)
    assert out.shape == (6, 8, 3) and out.dtype == np.uint8
    assert (out == 77).all()
    assert note in caplog.text and str(path) in caplog.text


def test_palette_image_converts(tmp_path):
    Image.fromarray(np.full((5, 5, 3), 200, np.uint8)).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (5, 5, 3)


def test_16_bit_colour_png_keeps_depth_raw_and_converts(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 65536, (9, 11, 4), dtype=np.uint16)
    path = tmp_path / "c16.png"
    path.write_bytes(png16_with_filters(image, [0, 1, 2, 3, 4]))
    raw = read_image_raw(path)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, image)
    expected = np.round(image[:, :, :3] / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(read_image(path), expected)


def test_uint16_written_as_16_bit_png(tmp_path):
    image = np.random.default_rng(2).integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    write_image(tmp_path / "w.png", image)
    np.testing.assert_array_equal(read_png16(tmp_path / "w.png"), image)
    with pytest.raises(ValueError, match="PNG"):
        write_image(tmp_path / "w.jpg", image)


def test_text_chunks_ride_along_at_8_and_16_bits_and_pixels_stay(tmp_path):
    """``restore`` marks its results with a PNG text chunk; the 16-bit writer inserts it by
    hand, so the file must stay a valid PNG with the same pixels."""
    from dfpir.data.io import png_text

    rng = np.random.default_rng(0)
    for name, image in (("w8.png", rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)),
                        ("w16.png", rng.integers(0, 65536, (9, 7, 3), dtype=np.uint16)),
                        ("g16.png", rng.integers(0, 65536, (9, 7), dtype=np.uint16))):
        write_image(tmp_path / name, image, {"Software": "dfpir restore"})
        assert png_text(tmp_path / name) == {"Software": "dfpir restore"}, name
        np.testing.assert_array_equal(read_image_raw(tmp_path / name), image)
    write_image(tmp_path / "plain.png", np.zeros((4, 4, 3), np.uint8))
    assert png_text(tmp_path / "plain.png") == {} and png_text(tmp_path / "none.png") == {}


def test_raw_keeps_alpha(tmp_path):
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 3] = 9
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert read_image_raw(tmp_path / "a.png").shape == (3, 4, 4)


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG garbage")
    with pytest.raises(ImageReadError, match="broken.png"):
        read_image(corrupt)
    truncated = tmp_path / "cut.jpg"
    write_image(truncated, np.random.default_rng(3).integers(0, 256, (64, 64, 3), np.uint8))
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(ImageReadError, match="cut.jpg"):
        read_image(truncated)
    with pytest.raises(ImageReadError, match="not found: .*nothing.png"):
        read_image(tmp_path / "nothing.png")
