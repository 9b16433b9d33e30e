"""Restore your own images with a trained model.

    python scripts/restore.py --ckpt dfpir5.ckpt --input photos/ --degradation derain
    python scripts/restore.py --ckpt dfpir5.ckpt -i hazy.jpg -o out.png -p "Hazy degradation"

An image file or a folder in; restored PNG files out. Any size (no crop: the network pads to a
multiple of 8 and crops back); 8- or 16-bit, grayscale, RGB or with alpha. Grayscale is
replicated to RGB for the network and written back as grayscale (mean of the restored channels);
alpha is set aside and re-attached unchanged; 16-bit input is restored in float from its full
precision and written as 16-bit PNG. Each conversion is noted on the console. An image that
cannot be read or restored is reported and the others are still restored; the exit status is
1 when any failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .config import ConfigError, ExperimentConfig, apply_override, build_dataclass, load_config
from .data import DataError, read_image_raw, write_image
from .data.io import is_image_file
from .evaluate import load_model, setup_cli_logging
from .inference import resolve_device, restore
from .models.checkpoint import CheckpointError, read_checkpoint
from .prompts import PromptError, build_encoder, get_degradation, prompt_sentence

__all__ = [
    "PreparedImage",
    "RestoreSummary",
    "collect_inputs",
    "finish_image",
    "main",
    "output_paths",
    "prepare_image",
    "prompt_embedding",
    "restore_config",
    "restore_files",
    "side_by_side",
]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------ configuration and prompt


def restore_config(checkpoint: str | os.PathLike | Mapping, config: str | os.PathLike | None = None,
                   overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The experiment config for restoring with ``checkpoint``: the YAML ``config`` when given,
    else the prompts section stored in the checkpoint (with defaults for everything else);
    ``overrides`` last. The architecture is chosen later, by ``load_model``."""
    if config is not None:
        return load_config(config, overrides)
    ckpt = checkpoint if isinstance(checkpoint, Mapping) else read_checkpoint(checkpoint)
    stored = ckpt.get("config")
    raw: dict = {}
    if isinstance(stored, Mapping) and isinstance(stored.get("prompts"), Mapping):
        raw["prompts"] = dict(stored["prompts"])
    name = "the checkpoint" if isinstance(checkpoint, Mapping) else str(checkpoint)
    origin = {"prompts": f"the config stored in {name}"} if raw else {}
    for override in overrides:
        apply_override(raw, override, origin)
    return build_dataclass(ExperimentConfig, raw, "", origin)


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


def collect_inputs(path: str | os.PathLike) -> list[Path]:
    """The image files to restore: ``path`` itself, or the image files in the folder
    ``path`` (not its sub-folders), sorted. Raises ``DataError`` when there are none."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p))
        if not files:
            raise DataError(f"no image files in folder {path}")
        return files
    raise DataError(f"input {path} does not exist")


def output_paths(inputs: Sequence[Path], out: Path, single_file: bool) -> list[Path]:
    """Where each restored image goes: ``out/<stem>.png`` (``<stem>_<ext>.png`` when two inputs
    share a stem); a single input may name the output file itself (``--out result.png``)."""
    if single_file and out.suffix.lower() == ".png":
        return [out]
    stems = [p.stem for p in inputs]
    return [out / (f"{p.stem}_{p.suffix.lstrip('.').lower()}.png" if stems.count(p.stem) > 1
                   else f"{p.stem}.png") for p in inputs]


@dataclass
class RestoreSummary:
    """What ``restore_files`` wrote and which inputs failed (with the reason)."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


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
) -> RestoreSummary:
    """Restore each input into its output path; failures are logged and collected, never
    stop the others. ``compare`` also writes ``<output stem>_side_by_side.png``."""
    summary = RestoreSummary()
    bar = tqdm(list(zip(inputs, outputs, strict=True)), desc="restoring", unit="img",
               disable=not progress or len(inputs) < 2, file=sys.stderr, dynamic_ncols=True)
    with logging_redirect_tqdm(loggers=[logging.getLogger("dfpir")]):
        for source, target in bar:
            try:
                prepared = prepare_image(read_image_raw(source))
                for note in prepared.notes:
                    logger.info("%s: %s", source.name, note)
                image = torch.from_numpy(prepared.rgb.transpose(2, 0, 1).copy()).to(device)
                output = restore(model, image, prompt, tile=tile, overlap=overlap, amp=amp)
                rgb = output.cpu().numpy().transpose(1, 2, 0)
                write_image(target, finish_image(rgb, prepared))
                summary.written.append(target)
                if compare:
                    preview = target.with_name(f"{target.stem}_side_by_side.png")
                    write_image(preview, side_by_side(prepared.rgb, rgb))
                    summary.written.append(preview)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                message = "out of GPU memory; try --tile 512 (or smaller)"
                logger.error("failed: %s: %s", source, message)
                summary.failed.append((source, message))
            except (DataError, OSError, ValueError) as err:
                logger.error("failed: %s: %s", source, err)
                summary.failed.append((source, str(err)))
            except (MemoryError, RuntimeError) as err:  # CPU out of memory, or a per-image fault
                out_of_memory = isinstance(err, MemoryError) or "memory" in str(err).lower()
                message = (f"out of memory ({type(err).__name__}); try --tile 512 (or smaller)"
                           if out_of_memory else f"{type(err).__name__}: {err}")
                logger.error("failed: %s: %s", source, message)
                summary.failed.append((source, message))
    return summary


# ------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    """The options of ``scripts/restore.py``."""
    parser = argparse.ArgumentParser(
        prog="restore.py",
        description="Restore an image or a folder of images with a trained DFPIR.",
    )
    parser.add_argument("--input", "-i", required=True, help="an image file or a folder")
    parser.add_argument("--out", "-o", default="restored",
                        help="output folder (or, for one input, a .png file); default: restored/")
    parser.add_argument("--ckpt", required=True, help="checkpoint: ours or a released one")
    parser.add_argument("--config", help="experiment YAML (default: the config stored in the "
                        "checkpoint, else the defaults)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--degradation", "-d",
                       help="degradation name: denoise_15, denoise_25, denoise_50, derain, "
                       "dehaze, deblur, lowlight")
    which.add_argument("--prompt", "-p", help="free prompt text, e.g. \"Rain degradation with "
                       "rain lines\"")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--tile", type=int, default=None,
                        help="tile size for large images (0 = whole image)")
    parser.add_argument("--tile-overlap", type=int, default=None, help="tile overlap (pixels)")
    parser.add_argument("--side-by-side", action="store_true",
                        help="also write <name>_side_by_side.png (input | restored)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--amp", choices=["none", "bf16", "fp16"], default=None,
                        help="autocast precision (default: eval.amp if the config has it, else "
                        "none)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/restore.py``: 0 when every image was restored, 1 when some failed, 2 for a
    usage, checkpoint or prompt error."""
    args = build_parser().parse_args(argv)
    setup_cli_logging()
    try:
        inputs = collect_inputs(args.input)
        single = Path(args.input).is_file()
        outputs = output_paths(inputs, Path(args.out), single)
        clashes = [str(p) for p, q in zip(inputs, outputs, strict=True)
                   if q.exists() and q.resolve() == p.resolve()]
        if clashes:
            raise DataError(f"the output would overwrite the input {clashes[0]}; choose another "
                            "--out folder")
        ckpt = read_checkpoint(args.ckpt)
        cfg = restore_config(ckpt, args.config, args.overrides)
        device = resolve_device(args.device or cfg.eval.device)
        try:
            loaded = load_model(ckpt, cfg.model, args.overrides, device)
        except CheckpointError as err:
            raise CheckpointError(f"{args.ckpt}: {err}") from err
        for note in loaded.notes:
            logger.info("note: %s", note)
        prompt = None
        if loaded.config.has_dgpb:
            if args.degradation is None and args.prompt is None:
                raise PromptError("this model needs a prompt: give --degradation NAME or "
                                  "--prompt TEXT")
            prompt, sentence = prompt_embedding(cfg, args.degradation, args.prompt, device)
            logger.info("prompt: %r (%s encoder)", sentence, cfg.prompts.encoder)
        else:
            if args.degradation is not None:
                get_degradation(args.degradation)
            if args.degradation or args.prompt:
                logger.info("note: the Restormer baseline takes no prompt; ignoring it")
    except (CheckpointError, ConfigError, PromptError, DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    tile = cfg.eval.tile if args.tile is None else args.tile
    overlap = cfg.eval.tile_overlap if args.tile_overlap is None else args.tile_overlap
    amp = args.amp or getattr(cfg.eval, "amp", "none")
    summary = restore_files(
        loaded.model, prompt, inputs, outputs, device=device, tile=tile, overlap=overlap,
        amp=None if amp == "none" else amp, compare=args.side_by_side,
        progress=not args.no_progress,
    )
    done = len(inputs) - len(summary.failed)
    where = outputs[0] if single and done else out
    print(f"restored {done} of {len(inputs)} image(s) into {where}")
    if summary.failed:
        print(f"{len(summary.failed)} failed:", file=sys.stderr)
        for path, reason in summary.failed:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0
