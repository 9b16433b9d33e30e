"""Command-line pieces of blind restoration: the flags and per-image prompt choice that
``dfpir restore --degradation auto`` and ``dfpir eval`` add (``dfpir.cli.restore``,
``dfpir.cli.eval``; training the classifier is ``dfpir.cli.train_classifier``)."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from ..config import ConfigError
from ..config.classifier import CLEAN, IF_UNSURE
from ..prompts import PromptBank, PromptConfig, build_encoder
from .api import choose_degradation, load_classifier
from .classifier import DegradationClassifier

__all__ = ["AutoChooser", "add_eval_arguments", "add_restore_arguments", "auto_prompt_chooser"]

logger = logging.getLogger(__name__)

AUTO = "auto"


# ------------------------------------------------------------------ restore.py / eval.py flags


def add_restore_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``restore.py --degradation auto``."""
    group = parser.add_argument_group("blind restoration (--degradation auto)")
    group.add_argument("--if-unsure", choices=IF_UNSURE, default=None,
                       help="below the confidence threshold: stop (leave the image as it is, "
                       "write nothing for it and say so) or restore with the top guess and say "
                       "so; default: classifier.if_unsure (stop)")
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


class AutoChooser:
    """For ``restore --degradation auto``: called with (input path, prepared image), it prints
    the prediction and gives the prompt of the predicted degradation, or ``None`` to leave the
    image as it is (it looks clean: listed in ``clean``; or unsure under ``stop``)."""

    def __init__(self, classifier: DegradationClassifier, bank: PromptBank, mode: str,
                 threshold: float | None, device: torch.device) -> None:
        self.classifier, self.bank, self.mode = classifier, bank, mode
        self.threshold, self.device = threshold, device
        self.clean: list[Path] = []

    def __call__(self, path: Path, prepared) -> torch.Tensor | None:
        choice = choose_degradation(self.classifier.predict(prepared.rgb, self.threshold),
                                    self.mode, grey=prepared.grayscale)
        print(f"{path.name}: {choice.message}", flush=True)
        if choice.clean:
            self.clean.append(path)
        if choice.degradation is None:
            return None
        return self.bank(choice.degradation, self.device)[0]


def auto_prompt_chooser(
    ckpt: Mapping, source: str, classifier_file: str | os.PathLike | None,
    prompts: PromptConfig, device: torch.device, *, if_unsure: str | None = None,
    threshold: float | None = None,
) -> AutoChooser:
    """The ``AutoChooser`` of a checkpoint's classifier (or of ``classifier_file``). Raises
    ``ClassifierError`` at once when there is no classifier."""
    classifier: DegradationClassifier = load_classifier(ckpt, source, classifier_file)
    mode = if_unsure or classifier.config.if_unsure
    tasks = [c for c in classifier.classes if c != CLEAN]
    bank = PromptBank(build_encoder(prompts, device=device), tasks, prompts.style)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"--threshold must be in [0, 1], got {threshold}")
    logger.info("degradation auto: classifier over %s, threshold %.2f, if unsure: %s",
                ", ".join(classifier.classes),
                classifier.config.threshold if threshold is None else threshold, mode)
    return AutoChooser(classifier, bank, mode, threshold, device)
