"""Restore your own images with a trained model.

    python scripts/restore.py --ckpt dfpir5.ckpt --input photos/ --degradation auto
    python scripts/restore.py --ckpt dfpir5.ckpt --input photos/ --degradation derain
    python scripts/restore.py --ckpt dfpir5.ckpt -i hazy.jpg -o out.png -p "Hazy degradation"

An image file or a folder in; restored PNG files out (the command line is ``dfpir.cli.restore``). Any size (no crop: the network pads to a
multiple of 8 and crops back); 8- or 16-bit, grayscale, RGB or with alpha. Grayscale is
replicated to RGB for the network and written back as grayscale (mean of the restored channels);
alpha is set aside and re-attached unchanged; 16-bit input is restored in float from its full
precision and written as 16-bit PNG. Each conversion is noted on the console. An image that
cannot be read or restored is reported and the others are still restored; the exit status is
1 when any failed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..config import ExperimentConfig
from ..data import DataError, read_image_raw, write_image
from ..data.io import image_header
from ..outputs import stops_held
from ..prompts import PromptError, build_encoder, get_degradation, prompt_sentence
from .folders import RESULT_TEXT
from .inference import restore

__all__ = [
    "PreparedImage",
    "RestoreSummary",
    "conversion_notes",
    "finish_image",
    "prepare_image",
    "prompt_embedding",
    "restore_files",
    "restore_paths",
    "side_by_side",
]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------ configuration and prompt


def prompt_embedding(cfg: ExperimentConfig, degradation: str | None = None,
                     text: str | None = None, device: str | torch.device | None = None
                     ) -> tuple[torch.Tensor, str]:
    """The prompt embedding (512,) and its sentence, from a degradation name (its sentence in
    ``cfg.prompts.style``) or free text. Unknown names raise ``PromptError`` listing the valid
    ones."""
    if (degradation is None) == (text is None):
        raise PromptError("give either a degradation name or a prompt text (not both)")
    if degradation is not None:
        get_degradation(degradation)
        sentence = prompt_sentence(degradation, cfg.prompts.style)
    else:
        sentence = str(text).strip()
        if not sentence:
            raise PromptError("the prompt text is empty")
    encoder = build_encoder(cfg.prompts, device=device)
    return encoder.encode([sentence])[0].to(device), sentence


# ------------------------------------------------------------------ image formats


@dataclass
class PreparedImage:
    """An input converted for the network, and what is needed to write it back alike."""

    rgb: np.ndarray  # float32 HxWx3 in [0, 1]
    alpha: np.ndarray | None  # the alpha channel as stored (uint8/uint16), re-attached later
    dtype: np.dtype  # uint8 or uint16: the output's bit depth
    grayscale: bool
    notes: list[str] = field(default_factory=list)


def prepare_image(raw: np.ndarray) -> PreparedImage:
    """Convert an array from ``read_image_raw`` (HxW, HxWx2/3/4; bool, uint8, uint16, other
    ints or float) to float RGB, keeping 16-bit precision, alpha and grayscale-ness."""
    notes = []
    array = raw
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise DataError(f"unsupported image shape {raw.shape}")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
        notes.append("1-bit image read as 8-bit")
    if array.dtype.kind == "f":
        scale = 1.0 if float(np.nanmax(array, initial=0.0)) <= 1.0 else 255.0
        array = np.clip(np.nan_to_num(array) / scale, 0.0, 1.0)
        array = np.round(array * 65535.0).astype(np.uint16)
        notes.append("floating-point image: written back as 16-bit PNG")
    elif array.dtype != np.uint8 and array.dtype != np.uint16:
        top = int(array.max(initial=0))
        array = np.clip(array, 0, 65535).astype(np.uint16 if top > 255 else np.uint8)
    dtype = array.dtype
    peak = 65535.0 if dtype == np.uint16 else 255.0
    if dtype == np.uint16:
        notes.append("16-bit image: restored at full precision, written as 16-bit PNG")
    alpha = None
    if array.ndim == 3 and array.shape[2] in (2, 4):
        alpha = array[:, :, -1].copy()
        array = array[:, :, :-1]
        notes.append("alpha channel set aside and re-attached unchanged")
    grayscale = array.ndim == 2 or array.shape[2] == 1
    if grayscale:
        array = array.reshape(array.shape[0], array.shape[1])
        array = np.repeat(array[:, :, None], 3, axis=2)
        notes.append("grayscale replicated to RGB for the model, written back as grayscale")
    rgb = (array.astype(np.float32) / np.float32(peak))
    return PreparedImage(np.ascontiguousarray(rgb), alpha, dtype, grayscale, notes)


def finish_image(rgb: np.ndarray, prepared: PreparedImage) -> np.ndarray:
    """The restored float RGB (HxWx3, [0, 1]) in the input's format: bit depth, grayscale,
    alpha."""
    peak = 65535.0 if prepared.dtype == np.uint16 else 255.0
    out = np.clip(rgb, 0.0, 1.0)
    if prepared.grayscale:
        out = out.mean(axis=2, keepdims=True)
    out = np.round(out * peak).astype(prepared.dtype)
    if prepared.alpha is not None:
        out = np.concatenate([out, prepared.alpha[:, :, None].astype(prepared.dtype)], axis=2)
    return out[:, :, 0] if out.shape[2] == 1 else out


def side_by_side(before: np.ndarray, after: np.ndarray, gap: int = 8) -> np.ndarray:
    """Two float HxWx3 images next to each other (before | after) with a white gap: a uint8
    preview image."""
    height = before.shape[0]
    spacer = np.ones((height, gap, 3), dtype=np.float32)
    both = np.concatenate([before, spacer, np.clip(after, 0.0, 1.0)], axis=1)
    return np.round(both * 255.0).astype(np.uint8)


# ------------------------------------------------------------------ conversions


def conversion_notes(source: Path, prepared: PreparedImage) -> list[str]:
    """What reading and writing back changed: ``prepared.notes`` (grey, alpha, 16-bit), or the
    colour model the file had when the reader turned it into RGB (palette, CMYK...)."""
    if prepared.notes:
        return list(prepared.notes)
    try:
        kind = image_header(source)[2]
    except DataError:
        return []
    if kind.startswith("mode "):  # PIL's mode names (a PNG's header says "palette" itself)
        kind = {"P": "palette"}.get(kind.removeprefix("mode "), kind.removeprefix("mode "))
    return [f"{kind} image read as RGB and written as RGB"] if kind else []


@dataclass
class RestoreSummary:
    """What ``restore_files`` wrote and which inputs failed (with the reason)."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # blind: looks clean, or unsure (stop)


def restore_files(
    model: torch.nn.Module,
    prompt: torch.Tensor | None,
    inputs: Sequence[Path],
    outputs: Sequence[Path],
    *,
    device: torch.device,
    tile: int = 0,
    overlap: int = 32,
    amp: str | None = None,
    compare: bool = False,
    progress: bool = True,
    choose_prompt: Callable[[Path, PreparedImage], torch.Tensor | None] | None = None,
) -> RestoreSummary:
    """Restore each input into its output path; failures are logged and collected, never
    stop the others. ``compare`` also writes ``<output stem>_side_by_side.png``.
    ``choose_prompt`` (blind restoration) gives each image its own prompt instead of
    ``prompt``; when it returns ``None`` the image is skipped."""

    def run(source: Path, prepared: PreparedImage) -> np.ndarray | None:
        image_prompt = prompt
        if choose_prompt is not None:
            image_prompt = choose_prompt(source, prepared)
            if image_prompt is None:
                return None
        image = torch.from_numpy(prepared.rgb.transpose(2, 0, 1).copy()).to(device)
        output = restore(model, image, image_prompt, tile=tile, overlap=overlap, amp=amp)
        return output.cpu().numpy().transpose(1, 2, 0)

    return restore_paths(run, inputs, outputs, compare=compare, progress=progress)


def restore_paths(
    run: Callable[[Path, PreparedImage], np.ndarray | None],
    inputs: Sequence[Path],
    outputs: Sequence[Path],
    *,
    compare: bool = False,
    progress: bool = True,
) -> RestoreSummary:
    """``restore_files`` for any restorer ``run`` ((input path, prepared image) -> float HxWx3
    in [0, 1], or ``None`` to skip the image): reads each input, converts it
    (``prepare_image``), restores and writes it back in its format."""
    summary = RestoreSummary()
    bar = tqdm(list(zip(inputs, outputs, strict=True)), desc="restoring", unit="img",
               disable=not progress or len(inputs) < 2, file=sys.stderr, dynamic_ncols=True)

    def fail(source: Path, target: Path, message: str) -> None:
        if target in summary.written:  # its side-by-side failed: say what is there
            message += f" (the restored image itself was written: {target})"
        logger.error("failed: %s: %s", source, message)
        summary.failed.append((source, message))

    with logging_redirect_tqdm(loggers=[logging.getLogger("dfpir")]):
        for source, target in bar:
            try:
                prepared = prepare_image(read_image_raw(source))
                rgb = run(source, prepared)
                if rgb is None:
                    summary.skipped.append(source)
                    continue
                with stops_held():  # a result on the disk is a result counted
                    write_image(target, finish_image(rgb, prepared), RESULT_TEXT)
                    summary.written.append(target)
                for note in conversion_notes(source, prepared):  # of what was written
                    logger.info("%s: %s", source.name, note)
                if compare:
                    preview = target.with_name(f"{target.stem}_side_by_side.png")
                    with stops_held():
                        write_image(preview, side_by_side(prepared.rgb, rgb), RESULT_TEXT)
                        summary.written.append(preview)
            except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (dfpir.cli.common.run_cli)
                done = sum(o in summary.written for o in outputs)
                logger.warning("stopped at %s: %d of %d image(s) restored before the stop, %d "
                               "file(s) written (each whole); the others not started",
                               source.name, done, len(inputs), len(summary.written))
                raise
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                fail(source, target, "out of GPU memory; try --tile 512 (or smaller)")
            except (DataError, OSError, ValueError) as err:
                fail(source, target, str(err))
            except (MemoryError, RuntimeError) as err:  # CPU out of memory, or a per-image fault
                out_of_memory = isinstance(err, MemoryError) or "memory" in str(err).lower()
                fail(source, target,
                     f"out of memory ({type(err).__name__}); try --tile 512 (or smaller)"
                     if out_of_memory else f"{type(err).__name__}: {err}")
    return summary
