"""Command-line pieces of blind restoration: the flags and per-image prompt choice that
``dfpir restore --degradation auto`` and ``dfpir eval`` add (``dfpir.cli.restore``,
``dfpir.cli.eval``; training the classifier is ``dfpir.cli.train_classifier``)."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from ..config import ConfigError
from ..config.classifier import IF_UNSURE
from ..prompts import PromptBank, PromptConfig, build_encoder
from .api import choose_degradation, load_classifier
from .classifier import DegradationClassifier

__all__ = ["add_eval_arguments", "add_restore_arguments", "auto_prompt_chooser"]

logger = logging.getLogger(__name__)

AUTO = "auto"


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
