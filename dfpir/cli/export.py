"""``dfpir export`` (``scripts/export.py``): export a training checkpoint in the release's
DFPIR checkpoint layout and as safetensors.

    dfpir export --ckpt runs/five_task/checkpoints/best.pt --out runs/five_task/export_best
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..loading import load_experiment, stored_model_config
from ..models.checkpoint import CheckpointError, read_checkpoint
from ..train import export_weights
from .common import add_ckpt, run_cli

__all__ = ["build_parser", "main", "run"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir export`` / ``scripts/export.py``."""
    parser = argparse.ArgumentParser(
        prog=prog or "export.py",
        description="Export a training checkpoint: the release's DFPIR checkpoint layout and "
                    "safetensors.")
    add_ckpt(parser, help="a checkpoint written by scripts/train.py")
    parser.add_argument("--out", required=True, help="output folder")
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the exported files and list them."""
    ckpt = read_checkpoint(args.ckpt)
    if stored_model_config(ckpt) is None:
        raise CheckpointError(f"{args.ckpt} holds no config: not written by scripts/train.py")
    loaded = load_experiment(ckpt, device="cpu", name=args.ckpt)
    epoch = int(ckpt.get("progress", {}).get("epoch", 0))
    for kind, path in export_weights(loaded.model, args.out, epoch).items():
        print(f"{kind}: {path}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir export``: 0, or 2 for a missing or foreign checkpoint."""
    return run_cli(build_parser(prog), run, argv)
