"""``dfpir export`` (``scripts/export.py``): export a checkpoint in the release's DFPIR
checkpoint layout and as safetensors, or one task with its prompt folded into the weights (ONNX
and/or safetensors, no CLIP needed to run it; ``dfpir.onnx_export``).

    dfpir export --ckpt runs/five_task/checkpoints/best.pt --out runs/five_task/export_best
    dfpir export --ckpt runs/demo/checkpoints/latest.pt --task derain --onnx derain.onnx
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Sequence

from ..config import ConfigError
from ..loading import load_experiment, stored_model_config
from ..models.checkpoint import CheckpointError, read_checkpoint
from ..outputs import check_room, claim_file, claim_names, writing_to
from ..restore.onnx_export import export_onnx, export_safetensors, task_model_from_checkpoint
from ..train import EXPORT_FILES, export_weights
from .common import add_ckpt, add_config, run_cli

__all__ = ["build_parser", "main", "run"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir export`` / ``scripts/export.py``."""
    parser = argparse.ArgumentParser(
        prog=prog or "export.py",
        description="Export a checkpoint: the release's DFPIR checkpoint layout and "
                    "safetensors (--out), or one task with its prompt folded in (--task with "
                    "--onnx and/or --safetensors).")
    add_ckpt(parser, help="a checkpoint written by scripts/train.py (or, for --task, any "
                          "checkpoint restore.py takes)")
    parser.add_argument("--out", help="output folder (release layout + safetensors)")
    group = parser.add_argument_group("per-task export (prompt folded in, no CLIP needed)")
    which = group.add_mutually_exclusive_group()
    which.add_argument("--task", help="degradation to fold in: denoise_15, denoise_25, "
                       "denoise_50, derain, dehaze, deblur, lowlight")
    which.add_argument("--prompt", help="or a free prompt text to fold in")
    group.add_argument("--onnx", metavar="FILE", help="write an ONNX model (dynamic H and W)")
    group.add_argument("--safetensors", metavar="FILE", help="write the folded weights")
    add_config(parser, help="experiment YAML for --task (default: the checkpoint's config)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that exist (without it they are an error)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the exported files and list them."""
    if args.onnx or args.safetensors:
        if args.out:
            raise ConfigError("--out is the folder of a whole-checkpoint export; a per-task "
                              "export writes the files --onnx/--safetensors name: give one "
                              "or the other")
        return _task_export(args)
    if args.task or args.prompt:
        raise ConfigError(f"{'--task' if args.task else '--prompt'} picks the prompt of a "
                          "per-task export: add --onnx FILE and/or --safetensors FILE (--out "
                          "exports the whole checkpoint, every task)")
    if not args.out:
        raise ConfigError("give --out FOLDER, or --task NAME with --onnx FILE and/or "
                          "--safetensors FILE")
    claim_names(args.out, EXPORT_FILES, "--out", args.overwrite, inputs=_inputs(args))
    ckpt = read_checkpoint(args.ckpt)
    if stored_model_config(ckpt) is None:
        raise CheckpointError(f"{args.ckpt} holds no config: not written by scripts/train.py")
    loaded = load_experiment(ckpt, device="cpu", name=args.ckpt)
    epoch = int(ckpt.get("progress", {}).get("epoch", 0))
    with writing_to(args.out, "--out", "run it again with --overwrite"):
        written = export_weights(loaded.model, args.out, epoch)
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return 0


def _inputs(args: argparse.Namespace) -> dict[str, str | None]:
    return {"--ckpt": args.ckpt, "--config": args.config}


def _task_export(args: argparse.Namespace) -> int:
    """``--onnx``/``--safetensors``: everything is checked before a file is written."""
    targets = [(flag, target, suffix) for flag, target, suffix in (
        ("--onnx", args.onnx, ".onnx"), ("--safetensors", args.safetensors, ".safetensors"))
        if target]
    for flag, target, suffix in targets:
        claim_file(target, flag, args.overwrite, suffix=suffix, inputs=_inputs(args))
    if args.onnx and importlib.util.find_spec("onnx") is None:
        raise ConfigError("--onnx needs the onnx extra: pip install -e \".[onnx]\"")
    model = task_model_from_checkpoint(args.ckpt, args.task, args.prompt, args.config,
                                       args.overrides)
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    for flag, target, _ in targets:  # a full disk said now, not after the export
        check_room(target, weights + 2**20, flag)
    print(f"folded the prompt {model.metadata.get('sentence')!r} "
          f"({model.metadata.get('prompt_encoder')} encoder)")
    if args.safetensors:
        with writing_to(args.safetensors, "--safetensors", "run it again with --overwrite"):
            print(f"safetensors: {export_safetensors(model, args.safetensors)}")
    if args.onnx:
        with writing_to(args.onnx, "--onnx", "run it again with --overwrite"):
            print(f"onnx: {export_onnx(model, args.onnx)}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir export``: 0, or 2 for a missing or foreign checkpoint or a bad option."""
    return run_cli(build_parser(prog), run, argv)
