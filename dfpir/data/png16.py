"""A small codec for 16-bit PNG files, which Pillow reads only as 8-bit when they have colour.

Used by ``io.read_image_raw`` (to keep 16-bit colour and alpha for restore scripts) and by
``io.write_image`` for uint16 arrays. Non-interlaced files only; 8-bit files go through Pillow.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS_OF_COLOUR_TYPE = {0: 1, 2: 3, 4: 2, 6: 4}
_COLOUR_TYPE_OF_CHANNELS = {v: k for k, v in _CHANNELS_OF_COLOUR_TYPE.items()}


def png_header(path: str | Path) -> dict[str, int] | None:
    """The IHDR fields of a PNG file (width, height, bit_depth, colour_type, interlace).

    Returns None when the file is not a PNG. Reads only the first 33 bytes.
    """
    with open(path, "rb") as handle:
        head = handle.read(33)
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height, bit_depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return {
        "width": width,
        "height": height,
        "bit_depth": bit_depth,
        "colour_type": colour_type,
        "interlace": interlace,
    }


def _paeth_row(line: bytes, prev: bytes, bpp: int) -> bytearray:
    out = bytearray(len(line))
    for i, value in enumerate(line):
        a = out[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        predictor = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
        out[i] = (value + predictor) & 255
    return out


def _average_row(line: bytes, prev: bytes, bpp: int) -> bytearray:
    out = bytearray(len(line))
    for i, value in enumerate(line):
        a = out[i - bpp] if i >= bpp else 0
        out[i] = (value + ((a + prev[i]) >> 1)) & 255
    return out


def _unfilter(data: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    """Undo the PNG per-row filters; Sub and Up are vectorised, Average and Paeth are loops."""
    rows = np.frombuffer(data, dtype=np.uint8)[: height * (stride + 1)].reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = int(rows[y, 0]), rows[y, 1:]
        if kind == 0:
            cur = line
        elif kind == 1:
            cur = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            cur = line + prev
        elif kind == 3:
            cur = np.frombuffer(_average_row(line.tobytes(), prev.tobytes(), bpp), np.uint8)
        elif kind == 4:
            cur = np.frombuffer(_paeth_row(line.tobytes(), prev.tobytes(), bpp), np.uint8)
        else:
            raise ValueError(f"invalid PNG filter type {kind} in row {y}")
        out[y] = cur
        prev = out[y]
    return out


def read_png16(path: str | Path) -> np.ndarray:
    """Decode a non-interlaced 16-bit PNG into uint16 HxW (grey) or HxWxC (C = 2, 3 or 4)."""
    blob = Path(path).read_bytes()
    if blob[:8] != PNG_SIGNATURE:
        raise ValueError("not a PNG file")
    pos, header, idat = 8, None, []
    while pos + 8 <= len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kind = blob[pos + 4 : pos + 8]
        body = blob[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        raise ValueError("PNG without IHDR or IDAT chunk")
    width, height, bit_depth, colour_type, _, _, interlace = header
    if bit_depth != 16 or colour_type not in _CHANNELS_OF_COLOUR_TYPE or interlace != 0:
        raise ValueError(
            f"unsupported PNG (bit depth {bit_depth}, colour type {colour_type}, "
            f"interlace {interlace}); expected non-interlaced 16-bit grey/RGB(A)"
        )
    channels = _CHANNELS_OF_COLOUR_TYPE[colour_type]
    bpp = 2 * channels
    data = zlib.decompress(b"".join(idat))
    if len(data) < height * (width * bpp + 1):
        raise ValueError("PNG image data is truncated")
    raw = _unfilter(data, height, width * bpp, bpp)
    pixels = raw.view(">u2").astype(np.uint16).reshape(height, width, channels)
    return pixels[:, :, 0] if channels == 1 else pixels


def write_png16(path: str | Path, array: np.ndarray) -> None:
    """Write a uint16 HxW or HxWxC (C = 1..4) array as a 16-bit PNG (no row filtering)."""
    pixels = np.asarray(array)
    if pixels.dtype != np.uint16:
        raise ValueError(f"write_png16 expects uint16, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width, channels = pixels.shape
    if channels not in _COLOUR_TYPE_OF_CHANNELS:
        raise ValueError(f"write_png16 expects 1 to 4 channels, got {channels}")
    rows = pixels.astype(">u2").reshape(height, width * channels).view(np.uint8)
    filtered = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 16, _COLOUR_TYPE_OF_CHANNELS[channels], 0, 0, 0)
    Path(path).write_bytes(
        PNG_SIGNATURE
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(filtered.tobytes(), 6))
        + chunk(b"IEND", b"")
    )
