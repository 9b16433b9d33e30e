"""``dfpir train_classifier`` (``scripts/train_classifier.py``): train the degradation
classifier (ours; for ``--degradation auto``) and store it in a checkpoint or its own file.

    dfpir train_classifier --config configs/demo.yaml --ckpt runs/demo/checkpoints/best.pt
    dfpir train_classifier --config configs/five_task.yaml --ckpt dfpir5.ckpt --out clf.pt
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..blind.classifier import ClassifierError, train_classifier
from ..config import ConfigError, load_config
from ..models.checkpoint import detect_layout, read_checkpoint
from ..outputs import check_output_place, check_room, claim_file
from ..train.checkpoint_io import atomic_save
from .common import add_config, run_cli

__all__ = ["build_parser", "main", "run"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir train_classifier`` / ``scripts/train_classifier.py``."""
    parser = argparse.ArgumentParser(
        prog=prog or "train_classifier.py",
        description="Train the degradation classifier (ours) on a config's training mix and "
                    "store it in a checkpoint (or in its own file with --out).")
    add_config(parser, required=True, help="experiment YAML (training data and its "
                                           "classifier: section)")
    parser.add_argument("--ckpt", help="checkpoint to add the classifier to (rewritten "
                        "atomically; its network weights are not changed)")
    parser.add_argument("--out", help="write the classifier to this file instead (read with "
                        "--classifier)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the --out file when it exists (without it: an error)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Check everything, train, then write: nothing is written on a user error."""
    if args.ckpt is None and args.out is None:
        raise ConfigError("give --ckpt (add the classifier to it) and/or --out FILE")
    cfg = load_config(args.config, args.overrides)
    ckpt = None
    if args.ckpt is not None and args.out is None:
        ckpt = read_checkpoint(args.ckpt)
        if detect_layout(ckpt)[0] == "state_dict":
            raise ClassifierError(f"{args.ckpt} is a bare state dict, which has no room for a "
                                  "classifier; write it beside with --out FILE")
    if args.out is not None:
        claim_file(args.out, "--out", args.overwrite,
                   inputs={"--ckpt": args.ckpt, "--config": args.config})
    else:  # rewritten in place (a new file renamed over it): checked before the training
        check_output_place(args.ckpt, "file", "--ckpt")
        check_room(args.ckpt, Path(args.ckpt).stat().st_size + 2**20, "--ckpt")
    classifier = train_classifier(cfg)
    state = classifier.to_state()
    if args.out is not None:
        atomic_save({"classifier": state}, args.out)
        where = args.out
    else:
        atomic_save({**ckpt, "classifier": state}, args.ckpt)
        where = args.ckpt
    print(f"classifier over {', '.join(classifier.classes)} written to {where}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir train_classifier``: 0 on success, 2 for a usage, config, data or checkpoint
    error (nothing written)."""
    return run_cli(build_parser(prog), run, argv)
