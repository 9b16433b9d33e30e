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
import os
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
from ..data.io import is_image_file, png_text
from ..outputs import (
    check_name_lengths,
    claim_file,
    place_keys,
    reserve,
    unique_path,
    with_companions,
)
from ..paths import not_a_file
from ..prompts import PromptError, build_encoder, get_degradation, prompt_sentence
from .inference import restore

__all__ = [
    "PreparedImage",
    "RESULT_TEXT",
    "RestoreSummary",
    "collect_inputs",
    "finish_image",
    "output_paths",
    "unique_path",
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


# ------------------------------------------------------------------ files


#: The PNG text chunk ``restore`` writes into its results, so that a second run into the same
#: folder can tell them from the photos.
RESULT_TEXT = {"Software": "dfpir restore"}


def collect_inputs(path: str | os.PathLike, out: str | os.PathLike | None = None
                   ) -> list[Path]:
    """The image files to restore: ``path`` itself, or the image files in the folder
    ``path`` (not its sub-folders), sorted; the other files of the folder (and entries that
    are no files: broken links, FIFOs) are named in a note,
    and an animated image given alone gets a note that only its first frame is restored.
    When ``out`` is the folder itself, the results an earlier ``restore`` wrote there (their
    PNG says so, ``RESULT_TEXT``) are skipped with a note: a second run restores the photos,
    not the first run's results. Raises ``DataError`` when there are none."""
    path = Path(path)
    if path.is_dir():
        visible = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        entries = [p for p in visible if p.is_file()]
        files = [p for p in entries if is_image_file(p)]
        others = [p.name for p in entries if not is_image_file(p)]
        unreadable = [p.name for p in visible if not p.is_dir() and not p.is_file()]
        if unreadable:  # broken or looping links, FIFOs, sockets
            logger.info("note: %d entr(ies) of %s skipped, not files (links to nothing or that "
                        "loop, FIFOs...): %s", len(unreadable), path, _some(unreadable))
        if others:
            logger.info("note: %d file(s) of %s skipped, not PNG/JPEG/BMP/TIFF/WebP images: %s",
                        len(others), path, _some(others))
        if out is not None and Path(out).is_dir() and Path(out).samefile(path):
            earlier = [p for p in files if _is_result(p)]
            if earlier:
                logger.info("note: %d image(s) of %s skipped: results of an earlier dfpir "
                            "restore into this folder (their PNG says so): %s; to restore one "
                            "again, give it as --input", len(earlier), path,
                            _some([p.name for p in earlier]))
                files = [p for p in files if p not in earlier]
                if not files:
                    raise DataError(f"folder {path} holds only results of an earlier dfpir "
                                    "restore; give one as --input to restore it again")
        if not files:
            raise DataError(f"no image files in folder {path}")
        return files
    why = not_a_file(path)
    if why:
        raise DataError(f"input {path} {why}; expected an image file or a folder of them")
    frames = _frame_count(path)
    if frames > 1:
        logger.info("note: %s has %d frames (an animation): only the first is restored",
                    path, frames)
    return [path]


def _some(names: Sequence[str]) -> str:
    return ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")


def _is_result(path: Path) -> bool:
    text = png_text(path)
    return all(text.get(key) == value for key, value in RESULT_TEXT.items())


def _frame_count(path: Path) -> int:
    try:
        from PIL import Image

        with Image.open(path) as image:
            return int(getattr(image, "n_frames", 1))
    except Exception:  # noqa: BLE001 (unreadable: the restore itself reports it)
        return 1


def output_paths(inputs: Sequence[Path], out: Path, single_file: bool,
                 compare: bool = False, overwrite: bool = False) -> list[Path]:
    """Where each restored image goes: ``out/<stem>.png`` (``<stem>_<ext>.png`` when two inputs
    share a stem; ``_2``, ``_3``... appended while a name, or with ``compare`` its
    ``_side_by_side.png``, is an existing file or already given out), so no result lands on
    another or on a file that was there before; with ``overwrite`` existing files other than
    the inputs may be replaced. A single input may name the output file itself (``--out
    result.png``), refused when it exists unless ``overwrite``. Raises ``DataError`` before any
    work for an output that cannot be written as asked."""
    check_name_lengths(out, "--out")
    suffix = out.suffix.lower()
    taken = reserve(inputs, set())  # never an input, even with overwrite
    companions = ("_side_by_side",) if compare else ()
    if single_file and suffix == ".png":
        if out.is_dir():
            raise DataError(f"--out {out} is a folder; name a .png file or a folder without "
                            "the .png ending")
        for name in with_companions(out, companions):
            if any(k in taken for k in place_keys(name)):
                raise DataError(f"--out {name} is the input itself (or another name of it, a "
                                "link); choose another name")
            claim_file(name, "--out", overwrite)
        return [out]
    if suffix and is_image_file(out) and not out.is_dir():
        raise DataError(
            f"--out {out}: restored images are written as PNG (16-bit and alpha kept); "
            + ("name the output file .png" if single_file else
               "a folder input needs an output folder"))
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is an existing file; expected an output folder")
    stems = [p.stem for p in inputs]
    paths = [unique_path(out / (f"{p.stem}_{p.suffix.lstrip('.').lower()}.png"
                                if stems.count(p.stem) > 1 else f"{p.stem}.png"),
                         taken, companions, keep_existing=not overwrite) for p in inputs]
    for path in paths:
        for name in with_companions(path, companions):
            check_name_lengths(name, "--out")
    return paths


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
                write_image(target, finish_image(rgb, prepared), RESULT_TEXT)
                summary.written.append(target)
                for note in prepared.notes:  # said of what was written
                    logger.info("%s: %s", source.name, note)
                if compare:
                    preview = target.with_name(f"{target.stem}_side_by_side.png")
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
