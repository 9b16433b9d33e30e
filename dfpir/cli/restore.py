"""``dfpir restore`` (``scripts/restore.py``): restore an image or a folder of images with a
trained model.

    dfpir restore --ckpt dfpir5.ckpt --input photos/ --degradation derain
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..blind.cli import AUTO, add_restore_arguments, auto_prompt_chooser
from ..config import ConfigError
from ..data.tasks import TASKS
from ..loading import load_experiment, say_notes, untrained_task_warning
from ..outputs import check_name_lengths, check_output_place
from ..prompts import PromptError, get_degradation
from ..restore import (
    collect_inputs,
    output_paths,
    prompt_embedding,
    restore_files,
    restore_paths,
)
from .common import (
    add_amp,
    add_ckpt,
    add_config,
    add_device,
    add_override_arch,
    int_in,
    run_cli,
)

__all__ = ["build_parser", "main", "run"]

logger = logging.getLogger("dfpir.restore")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir restore`` / ``scripts/restore.py``."""
    parser = argparse.ArgumentParser(
        prog=prog or "restore.py",
        description="Restore an image or a folder of images with a trained DFPIR.",
    )
    parser.add_argument("--input", "-i", required=True, help="an image file or a folder")
    parser.add_argument("--out", "-o", default="restored",
                        help="output folder (or, for one input, a .png file); default: restored/")
    add_ckpt(parser, required=False, help="checkpoint: ours, a released DFPIR one or a "
             "released Restormer one (or give --onnx)")
    add_override_arch(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--degradation", "-d",
                       help="auto (the classifier stored with the model picks it per image), "
                       f"or a degradation name: {', '.join(TASKS)}")
    which.add_argument("--prompt", "-p", help="free prompt text, e.g. \"Rain degradation with "
                       "rain lines\"")
    add_config(parser, help="experiment YAML (default: the config stored in the checkpoint, "
                            "else the defaults)")
    parser.add_argument("--tile", type=int, default=None,
                        help="tile size for large images (0 = whole image)")
    parser.add_argument("--tile-overlap", type=int, default=None, help="tile overlap (pixels)")
    parser.add_argument("--side-by-side", action="store_true",
                        help="also write <name>_side_by_side.png (input | restored)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing files of the output names (never an input); "
                        "without it a name that exists gets _2, _3, ... and an existing --out "
                        "FILE.png is an error")
    add_device(parser)
    add_amp(parser)
    parser.add_argument("--no-progress", action="store_true")
    add_restore_arguments(parser)
    onnx = parser.add_argument_group("a per-task ONNX export instead of --ckpt")
    onnx.add_argument("--onnx", metavar="FILE", help="a per-task ONNX export (dfpir export "
                      "--task NAME --onnx FILE) run with onnxruntime: no torch model, no CLIP "
                      "weights")
    onnx.add_argument("--threads", type=int_in(1), default=None,
                      help="onnxruntime CPU threads (with --onnx; default: all cores)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Restore the inputs: 0 when every image was restored (or, blind, left as it is because
    it looks clean), 1 when some failed (or, blind, were left unrestored as unsure)."""
    for flag, value in (("--tile", args.tile), ("--tile-overlap", args.tile_overlap)):
        if value is not None and value < 0:
            raise ConfigError(f"{flag} must be >= 0 (--tile 0 = whole image), got {value}")
    if args.tile and args.tile_overlap is not None and args.tile_overlap >= args.tile:
        raise ConfigError(f"--tile ({args.tile}) must be larger than --tile-overlap "
                          f"({args.tile_overlap})")
    for flag, value in (("--input", args.input), ("--out", args.out)):
        if not value.strip():  # Path("") is ".": never the current folder by accident
            raise ConfigError(f"{flag} is empty; name a file or folder (. for the current one)")
    if args.onnx and args.ckpt:
        raise ConfigError("give either --ckpt or --onnx, not both")
    if not args.onnx and not args.ckpt:
        raise ConfigError("give --ckpt CHECKPOINT (or --onnx FILE, a per-task export)")
    _check_degradation(args)
    check_name_lengths(args.out, "--out")
    notes: list[str] = []  # the folder's, said once the outputs are checked too
    inputs = collect_inputs(args.input, args.out, notes)
    single = Path(args.input).is_file()
    outputs = output_paths(inputs, Path(args.out), single, compare=args.side_by_side,
                           overwrite=args.overwrite, notes=notes)
    check_output_place(outputs[0] if single else args.out, "file" if single else "dir", "--out")
    for note in notes:
        logger.info("%s", note)
    _note_ignored(args)
    if args.onnx:
        return _run_onnx(args, inputs, outputs, single)
    loaded = load_experiment(args.ckpt, args.config, args.overrides, args.device,
                             override_arch=args.override_arch)
    cfg = loaded.cfg
    tile, overlap = _tiling(args, cfg.eval.tile, cfg.eval.tile_overlap,
                            "eval.tile_overlap of the checkpoint's config")
    device = next(loaded.model.parameters()).device
    say_notes(loaded.notes, logger)
    prompt, choose = None, None
    if loaded.config.has_dgpb and args.degradation == AUTO:  # blind: dfpir.blind
        choose = auto_prompt_chooser({"classifier": loaded.classifier_state}, args.ckpt,
                                     args.classifier,
                                     cfg.prompts, device, if_unsure=args.if_unsure,
                                     threshold=args.threshold)
    elif loaded.config.has_dgpb:
        _say_ignored([("--if-unsure", args.if_unsure), ("--threshold", args.threshold),
                      ("--classifier", args.classifier)],
                     "--degradation auto only", " with a named degradation or --prompt")
        if args.degradation is None and args.prompt is None:
            raise PromptError("this model needs a prompt: give --degradation NAME (or "
                              "auto) or --prompt TEXT")
        prompt, sentence = prompt_embedding(cfg, args.degradation, args.prompt, device)
        logger.info("prompt: %r (%s encoder)", sentence, cfg.prompts.encoder)
        untrained = untrained_task_warning(loaded, args.degradation)
        if untrained:
            logger.warning("warning: %s", untrained)
    else:
        if args.degradation is not None and args.degradation != AUTO:
            get_degradation(args.degradation)
        if args.degradation or args.prompt:
            logger.info("note: the Restormer baseline takes no prompt; ignoring it")
    out = Path(args.out)
    amp = args.amp or getattr(cfg.eval, "amp", "none")
    summary = restore_files(
        loaded.model, prompt, inputs, outputs, device=device, tile=tile, overlap=overlap,
        amp=None if amp == "none" else amp, compare=args.side_by_side,
        progress=not args.no_progress, choose_prompt=choose,
    )
    return _report(summary, len(inputs), outputs[0] if single else out,
                   choose.clean if choose is not None else ())


def _run_onnx(args: argparse.Namespace, inputs: list[Path], outputs: list[Path],
              single: bool) -> int:
    """``--onnx FILE``: the exported task's model in onnxruntime; --degradation/--prompt, when
    given, must be the exported task or sentence."""
    from ..restore.onnx_runtime import OnnxRestorer

    runner = OnnxRestorer(args.onnx, threads=args.threads)
    if args.degradation == AUTO:
        raise PromptError(f"--degradation auto needs the checkpoint (its classifier and every "
                          f"task's prompt); {args.onnx} restores its one task, "
                          f"{runner.task!r}: give --ckpt for blind restoration")
    if args.degradation is not None and args.degradation != runner.task:
        raise PromptError(f"{args.onnx} was exported for {runner.task!r} ({runner.sentence!r}), "
                          f"not {args.degradation!r}; export that task with dfpir export --task")
    if args.prompt is not None and args.prompt.strip() != runner.sentence:
        raise PromptError(f"{args.onnx} was exported for the prompt {runner.sentence!r}")
    logger.info("onnx: %s, task %r, prompt %r", args.onnx, runner.task, runner.sentence)
    tile, overlap = _tiling(args, 0, 32, "the ONNX runner's default")
    summary = restore_paths(lambda _path, prepared: runner.restore(prepared.rgb, tile=tile,
                                                                   overlap=overlap),
                            inputs, outputs, compare=args.side_by_side,
                            progress=not args.no_progress)
    return _report(summary, len(inputs), outputs[0] if single else Path(args.out))


def _check_degradation(args: argparse.Namespace) -> None:
    """An unknown --degradation, before any work; ``auto`` is one of the choices."""
    if args.degradation is None or args.degradation == AUTO:
        return
    try:
        get_degradation(args.degradation)
    except PromptError as err:
        raise PromptError(f"{err}, or auto (the stored classifier picks per image)") from None


def _note_ignored(args: argparse.Namespace) -> None:
    """One note for the options this way of restoring does not use."""
    if args.onnx:
        _say_ignored([("--if-unsure", args.if_unsure), ("--threshold", args.threshold),
                      ("--classifier", args.classifier), ("--config", args.config),
                      ("--set", args.overrides or None), ("--amp", args.amp)],
                     "a checkpoint (--ckpt); an ONNX export restores its one folded task")
    else:
        _say_ignored([("--threads", args.threads)], "--onnx (torch uses its own threads)")


def _say_ignored(options: Sequence[tuple[str, object]], where: str, how: str = "") -> None:
    """``note: OPTIONS apply to WHERE; ignored HOW`` for the (flag, value) options given."""
    given = [flag for flag, value in options if value is not None]
    if given:
        logger.warning("note: %s appl%s to %s; ignored%s", ", ".join(given),
                       "ies" if len(given) == 1 else "y", where, how)


def _tiling(args: argparse.Namespace, tile: int, overlap: int, source: str
            ) -> tuple[int, int]:
    """The tile and overlap to use: the options over the defaults (``source`` names where
    the defaults come from, for the error)."""
    tile = tile if args.tile is None else args.tile
    if args.tile_overlap is not None:
        if not tile:
            logger.warning("note: --tile-overlap applies with --tile; images are restored "
                           "whole, so it is ignored")
        overlap = args.tile_overlap
    if tile and overlap >= tile:
        given = "--tile-overlap" if args.tile_overlap is not None else f"the default, {source}"
        raise ConfigError(f"--tile {tile} must be larger than the tile overlap {overlap} "
                          f"({given}); give a larger --tile or a smaller --tile-overlap")
    return tile, overlap


def _report(summary, count: int, where: Path, clean: Sequence[Path] = ()) -> int:
    """Print what was restored, left as it is (looks clean), skipped (unsure) and failed; the
    exit status (a clean image left as it is is not a failure)."""
    done = count - len(summary.failed) - len(summary.skipped)
    files = len(summary.written)
    if not files:
        print(f"restored {done} of {count} image(s); nothing written")
    else:
        print(f"restored {done} of {count} image(s) into {where}"
              + (f" ({files} file(s) written)" if files != done else ""))
    unsure = [p for p in summary.skipped if p not in clean]
    if clean:
        print(f"{len(clean)} left as they are (they look clean; nothing written for them): "
              + ", ".join(str(p) for p in clean))
    if unsure:
        print(f"{len(unsure)} not restored (unsure, --if-unsure stop): "
              + ", ".join(str(p) for p in unsure), file=sys.stderr)
    if summary.failed:
        print(f"{len(summary.failed)} failed:", file=sys.stderr)
        for path, reason in summary.failed:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 1 if unsure else 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir restore``: 0 when every image was restored, 1 when some failed, 2 for a usage,
    config, checkpoint, device or prompt error."""
    return run_cli(build_parser(prog), run, argv)
