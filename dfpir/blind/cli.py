"""Command-line pieces of blind restoration, kept apart from the restore/eval entry points so
they can move with them: ``scripts/train_classifier.py``, and the flags and per-image prompt
choice that ``restore.py --degradation auto`` and ``eval.py`` add."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from ..config import ConfigError, load_config
from ..data import DataError
from ..models.checkpoint import CheckpointError, detect_layout, read_checkpoint
from ..prompts import PromptBank, PromptConfig, build_encoder
from .api import choose_degradation, load_classifier
from .classifier import ClassifierError, DegradationClassifier, train_classifier
from .config import IF_UNSURE

__all__ = ["add_eval_arguments", "add_restore_arguments", "auto_prompt_chooser",
           "train_classifier_main"]

logger = logging.getLogger(__name__)

AUTO = "auto"


# ------------------------------------------------------------------ train_classifier.py


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_classifier.py",
        description="Train the degradation classifier (ours) on a config's training mix and "
                    "store it in a checkpoint (or in its own file with --out).")
    parser.add_argument("--config", required=True, help="experiment YAML (training data and "
                        "its classifier: section)")
    parser.add_argument("--ckpt", help="checkpoint to add the classifier to (rewritten "
                        "atomically; its network weights are not changed)")
    parser.add_argument("--out", help="write the classifier to this file instead (read with "
                        "--classifier)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override, e.g. classifier.steps=300")
    return parser


def train_classifier_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/train_classifier.py``: 0 on success, 2 for a usage, config, data or checkpoint
    error (nothing written)."""
    from ..evaluate import setup_cli_logging
    from ..train.checkpointing import atomic_save

    args = _parser().parse_args(argv)
    setup_cli_logging()
    try:
        if args.ckpt is None and args.out is None:
            raise ConfigError("give --ckpt (add the classifier to it) and/or --out FILE")
        cfg = load_config(args.config, args.overrides)
        ckpt = None
        if args.ckpt is not None and args.out is None:
            ckpt = read_checkpoint(args.ckpt)
            if detect_layout(ckpt)[0] == "state_dict":
                raise ClassifierError(f"{args.ckpt} is a bare state dict, which has no room for "
                                      "a classifier; write it beside with --out FILE")
        if args.out is not None and Path(args.out).is_dir():
            raise ConfigError(f"--out {args.out} is a folder; expected a file name")
        classifier = train_classifier(cfg)
    except (ConfigError, DataError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    state = classifier.to_state()
    if args.out is not None:
        atomic_save({"classifier": state}, args.out)
        where = args.out
    else:
        atomic_save({**ckpt, "classifier": state}, args.ckpt)
        where = args.ckpt
    print(f"classifier over {', '.join(classifier.classes)} written to {where}")
    return 0


# ------------------------------------------------------------------ restore.py / eval.py flags


def add_restore_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``restore.py --degradation auto``."""
    group = parser.add_argument_group("blind restoration (--degradation auto)")
    group.add_argument("--if-unsure", choices=IF_UNSURE, default=None,
                       help="below the confidence threshold: restore with the top guess and "
                       "say so, or stop (skip the image); default: classifier.if_unsure "
                       "(restore)")
    group.add_argument("--threshold", type=float, default=None,
                       help="confidence below which a prediction is unsure (default: the one "
                       "stored with the classifier)")
    group.add_argument("--classifier", help="classifier file written by "
                       "train_classifier.py --out (default: the one in the checkpoint)")


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags ``eval.py`` gets for blind evaluation and the prompt matrix."""
    parser.add_argument("--classifier", help="classifier file (default: the one in the "
                        "checkpoint, if any): adds accuracy, confusion and the blind row")
    parser.add_argument("--prompt-matrix", action="store_true",
                        help="also restore every test set with every prompt: "
                        "prompt_matrix.csv and prompt_matrix.md")


def auto_prompt_chooser(
    ckpt: Mapping, source: str, classifier_file: str | os.PathLike | None,
    prompts: PromptConfig, device: torch.device, *, if_unsure: str | None = None,
    threshold: float | None = None,
) -> Callable[[Path, object], torch.Tensor | None]:
    """For ``restore.py --degradation auto``: a function (input path, prepared image) -> the
    prompt of its predicted degradation, or ``None`` to skip it (unsure, ``stop``). It prints
    each prediction. Raises ``ClassifierError`` at once when there is no classifier."""
    classifier: DegradationClassifier = load_classifier(ckpt, source, classifier_file)
    mode = if_unsure or classifier.config.if_unsure
    bank = PromptBank(build_encoder(prompts, device=device), classifier.classes, prompts.style)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"--threshold must be in [0, 1], got {threshold}")
    logger.info("degradation auto: classifier over %s, threshold %.2f, if unsure: %s",
                ", ".join(classifier.classes),
                classifier.config.threshold if threshold is None else threshold, mode)

    def choose(path: Path, prepared) -> torch.Tensor | None:
        choice = choose_degradation(classifier.predict(prepared.rgb, threshold), mode)
        print(f"{path.name}: {choice.message}", flush=True)
        return None if choice.degradation is None else bank(choice.degradation, device)[0]

    return choose
