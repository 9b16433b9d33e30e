"""Reading and writing images: one reader that always gives 8-bit RGB, one that keeps the file.

``read_image`` is what every dataset uses: it converts grayscale, palette, alpha and 16-bit files
to 8-bit RGB (logging a note, because the release does the same silently with
``Image.open(...).convert('RGB')``) and raises ``ImageReadError`` naming the file when it cannot be
decoded. ``read_image_raw`` keeps dtype and alpha for restore scripts; ``write_image`` writes
float [0, 1], uint8 or uint16 arrays.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from ..outputs import replaced
from ..paths import not_a_file
from .errors import ImageReadError

logger = logging.getLogger(__name__)

_EXIF_ORIENTATION = 0x0112  # the TIFF/EXIF Orientation tag

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_TIFF_EXTENSIONS = (".tif", ".tiff")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_header(path: str | Path) -> dict[str, int] | None:
    """The IHDR fields of a PNG file (width, height, bit_depth, colour_type, interlace).

    Returns None when the file is not a PNG. Reads only the first 33 bytes.
    """
    with open(path, "rb") as handle:
        head = handle.read(33)
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height, bit_depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return {"width": width, "height": height, "bit_depth": bit_depth,
            "colour_type": colour_type, "interlace": interlace}


def read_png16(path: str | Path) -> np.ndarray:
    """A 16-bit PNG (any colour type) as uint16 HxW or HxWxC, by libpng through imagecodecs
    (Pillow reads 16-bit colour PNG only as 8-bit)."""
    import imagecodecs

    return imagecodecs.png_decode(Path(path).read_bytes())


def write_png16(path: str | Path, array: np.ndarray, text: Mapping[str, str] | None = None
                ) -> None:
    """Write uint16 HxW or HxWxC (C = 1..4) as a 16-bit PNG (libpng through imagecodecs), with
    ``text`` as tEXt chunks after the header."""
    import imagecodecs

    pixels = np.ascontiguousarray(array)
    if pixels.dtype != np.uint16:
        raise ValueError(f"write_png16 expects uint16, got {pixels.dtype}")
    data = imagecodecs.png_encode(pixels)
    chunks = b"".join(_png_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
                      for key, value in (text or {}).items())
    end_of_header = 8 + 8 + 13 + 4  # signature, IHDR's length and type, its data, its CRC
    Path(path).write_bytes(data[:end_of_header] + chunks + data[end_of_header:])


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_text(path: str | Path) -> dict[str, str]:
    """The text chunks a PNG holds before its pixels ({} for other files and unreadable ones);
    reads the header only."""
    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                return {}
            return {k: v for k, v in image.info.items() if isinstance(v, str)}
    except (OSError, UnidentifiedImageError, ValueError):
        return {}


def is_image_file(path: str | Path) -> bool:
    """True for a visible file whose extension is a supported image format (case-insensitive)."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _read_with_pillow(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        image.load()
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
        if orientation not in (1, None):  # as viewers show it: a phone's portrait stays upright
            image = ImageOps.exif_transpose(image)
            logger.info("%s: EXIF orientation %s applied on read", path.name, orientation)
        mode = image.mode
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif mode == "PA":
            image = image.convert("RGBA")
        elif mode == "1":
            image = image.convert("L")
        elif mode not in ("L", "LA", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L", "F"):
            image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV ...
        array = np.asarray(image)
    if array.dtype == np.int32 and array.size and array.min() >= 0 and array.max() <= 65535:
        array = array.astype(np.uint16)  # Pillow's mode "I" for 16-bit greyscale
    return np.array(array)


def _read_tiff(path: Path) -> np.ndarray | None:
    try:
        import tifffile
    except ImportError:  # pragma: no cover - tifffile ships with scikit-image
        return None
    try:
        array = tifffile.imread(path)
    except Exception:  # noqa: BLE001 - fall back to Pillow, which gives its own error
        return None
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[2] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # planar TIFF
    return array if array.ndim in (2, 3) else None


def read_image_raw(path: str | Path) -> np.ndarray:
    """The image as stored: HxW or HxWxC (C = 2 grey+alpha, 3, 4 with alpha), uint8/uint16/float.

    Keeps 16-bit depth (including 16-bit colour PNG, which Pillow would truncate) and alpha, so a
    restore script can write its output back in the input's format. Raises ``ImageReadError``.
    """
    path = Path(path)
    why = not_a_file(path)
    if why == "does not exist":
        raise ImageReadError(f"image file not found: {path}")
    if why:
        raise ImageReadError(f"{path} {why}; expected an image file")
    try:
        header = png_header(path)
        if header is not None and header["bit_depth"] == 16:
            return read_png16(path)
        if path.suffix.lower() in _TIFF_EXTENSIONS:
            array = _read_tiff(path)
            if array is not None:
                return array
        return _read_with_pillow(path)
    except (OSError, ValueError, UnidentifiedImageError, SyntaxError) as error:
        raise ImageReadError(f"cannot read image {path}: {error}") from error
    except Exception as error:  # noqa: BLE001 - decoders raise many types on corrupt data
        raise ImageReadError(
            f"cannot read image {path}: {type(error).__name__}: {error}"
        ) from error


def to_uint8_rgb(array: np.ndarray, source: str = "image") -> np.ndarray:
    """Convert any array from ``read_image_raw`` to uint8 HxWx3, logging what was converted."""
    notes = []
    if array.ndim == 3 and array.shape[2] in (2, 4):
        array = array[:, :, : array.shape[2] - 1]
        notes.append("alpha channel dropped")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
        notes.append("grayscale replicated to RGB")
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageReadError(f"cannot convert {source} of shape {array.shape} to RGB")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
        notes.append("1-bit scaled to 8-bit")
    elif array.dtype == np.uint16 or (array.dtype.kind in "iu" and array.max(initial=0) > 255):
        array = np.round(np.clip(array, 0, 65535).astype(np.float64) / 257.0).astype(np.uint8)
        notes.append("16-bit scaled to 8-bit")
    elif array.dtype.kind == "f":
        scale = 255.0 if array.max(initial=0.0) <= 1.0 else 1.0
        array = np.round(np.clip(array * scale, 0, 255)).astype(np.uint8)
        notes.append("floating point scaled to 8-bit")
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if notes:
        logger.info("converted %s to 8-bit RGB: %s", source, ", ".join(notes))
    return np.ascontiguousarray(array)


def read_image(path: str | Path) -> np.ndarray:
    """Read any supported image as uint8 HxWx3 RGB; raises ``ImageReadError`` naming the file."""
    return to_uint8_rgb(read_image_raw(path), source=str(path))


def _as_numpy_hwc(array: object) -> np.ndarray:
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None and isinstance(array, torch.Tensor):
        tensor = array.detach().cpu()
        if tensor.ndim == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        return tensor.permute(1, 2, 0).numpy() if tensor.ndim == 3 else tensor.numpy()
    return np.asarray(array)


def write_image(path: str | Path, array: object, text: Mapping[str, str] | None = None
                ) -> None:
    """Write an image; creates parent folders. ``text``: PNG text chunks (say who wrote it).

    ``array`` is numpy HxW or HxWxC (C = 1..4) as float in [0, 1] (clipped, rounded to 8-bit),
    uint8, or uint16 (PNG only, written as 16-bit); a torch tensor is taken as CHW (or 1xCxHxW).
    """
    path = Path(path)
    pixels = _as_numpy_hwc(array)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (2, 3, 4)):
        raise ValueError(f"write_image expects HxW or HxWxC with C in 1..4, got {pixels.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if pixels.dtype == np.uint16 and path.suffix.lower() != ".png":
        raise ValueError(f"16-bit images can only be written as PNG, not {path}")
    if pixels.dtype.kind == "f":
        pixels = np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"write_image expects float in [0, 1], uint8 or uint16, got {pixels.dtype}"
        )
    try:
        with replaced(path) as tmp:  # a new file: never written through a link to another
            if pixels.dtype == np.uint16:
                write_png16(tmp, pixels, text)
            elif path.suffix.lower() in (".jpg", ".jpeg"):
                Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB").save(
                    tmp, quality=95)
            else:
                info = None
                if text and path.suffix.lower() == ".png":
                    info = PngInfo()
                    for key, value in text.items():
                        info.add_text(key, value)
                Image.fromarray(np.ascontiguousarray(pixels)).save(tmp, pnginfo=info)
    except OSError as err:  # a full disk fails the write with no file name: name it
        err.filename = str(path) if not err.filename or ".tmp" in str(err.filename) else \
            err.filename
        raise


_PNG_COLOUR_NOTES = {0: "grayscale", 3: "palette", 4: "grayscale with alpha", 6: "RGBA"}


def image_header(path: str | Path) -> tuple[int, int, str]:
    """(height, width, note) from the file header without decoding the pixels.

    ``note`` says what ``read_image`` will convert (e.g. "16-bit grayscale"), "" for 8-bit RGB.
    Raises ``ImageReadError`` naming the file when the header cannot be read.
    """
    path = Path(path)
    try:
        header = png_header(path)
        if header is not None:
            parts = ["16-bit"] if header["bit_depth"] == 16 else []
            if header["colour_type"] in _PNG_COLOUR_NOTES:
                parts.append(_PNG_COLOUR_NOTES[header["colour_type"]])
            return header["height"], header["width"], " ".join(parts)
        with Image.open(path) as image:
            width, height = image.size
            mode = image.mode
        return height, width, "" if mode == "RGB" else f"mode {mode}"
    except (OSError, ValueError, UnidentifiedImageError, SyntaxError) as error:
        raise ImageReadError(f"cannot read image {path}: {error}") from error
