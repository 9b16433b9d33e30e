"""Blind restoration: the classifier picks the prompt, and says when it is unsure.

    clf = load_classifier(ckpt, "ckpt.pt")              # the classifier stored with the model
    choice = choose_degradation(clf.predict(rgb))        # if unsure: left as it is
    print(choice.message)                               # prediction, probability, runner-up
    if choice.degradation is not None:
        restored = restore(model, image, bank(choice.degradation)[0])

``blind_restore`` does the three steps for one image.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config.classifier import CLEAN, IF_UNSURE
from ..models.checkpoint import read_checkpoint
from ..restore.inference import restore
from .classifier import (
    ClassifierError,
    DegradationClassifier,
    Prediction,
    classifier_from_checkpoint,
)

__all__ = ["BlindChoice", "blind_restore", "choose_degradation", "load_classifier",
           "restore_as"]


def load_classifier(checkpoint: Mapping | str | os.PathLike, source: str | None = None,
                    classifier: str | os.PathLike | None = None) -> DegradationClassifier:
    """The classifier of a checkpoint (a loaded mapping or a path), or of the separate file
    ``classifier`` when given. ``ClassifierError`` (one line, with the remedy) when there is
    none."""
    if classifier is not None:
        path = Path(classifier)
        found = classifier_from_checkpoint(read_checkpoint(
            path, "--classifier file", "a file of dfpir train_classifier --out, or a "
            "checkpoint holding a classifier"), str(path))
        if found is None:
            raise ClassifierError(f"{path} holds no degradation classifier")
        return found
    if not isinstance(checkpoint, Mapping):
        source = source or str(checkpoint)
        checkpoint = read_checkpoint(checkpoint)
    source = source or "the checkpoint"
    found = classifier_from_checkpoint(checkpoint, source)
    if found is None:
        raise ClassifierError(
            f"{source} holds no degradation classifier, which --degradation auto needs; train "
            f"one with: python scripts/train_classifier.py --config CONFIG.yaml --ckpt {source} "
            "(or name the degradation with --degradation NAME)")
    return found


@dataclass
class BlindChoice:
    """What blind restoration does with one image: the degradation to restore with (``None``:
    left as it is, because it looks clean or the prediction is unsure) and the line that says
    so. ``clean``: left as it is because it looks clean (not a failure to judge it)."""

    prediction: Prediction
    degradation: str | None
    message: str
    clean: bool = False


#: The degradation whose cue (faded colour) a grey photo always shows.
HAZE = "dehaze"


def is_grey(rgb: np.ndarray | torch.Tensor) -> bool:
    """Whether an RGB image (HxWx3 array or 3xHxW tensor) is greyscale: its channels equal."""
    if isinstance(rgb, torch.Tensor):
        return bool(torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2]))
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1])
                and np.array_equal(rgb[..., 1], rgb[..., 2]))


def choose_degradation(prediction: Prediction, if_unsure: str = IF_UNSURE[0],
                       grey: bool = False) -> BlindChoice:
    """Restore with the top prediction, or leave the image as it is (and count it handled)
    when that is ``clean``, however sure; when a degradation guess is unsure (probability below
    its threshold) name the top two and leave the image as it is (``"stop"``, the default) or
    follow the top guess anyway (``"restore"``). On a ``grey`` image a haze guess counts as
    unsure however sure it is: haze is told partly by faded colour, which every grey photo
    has (a clean grey photo was taken for haze at p=0.66); the other degradations are told by
    brightness and texture, which grey keeps."""
    if if_unsure not in IF_UNSURE:
        raise ValueError(f"if_unsure must be one of {IF_UNSURE}, got {if_unsure!r}")
    p = prediction
    if not p.unsure and p.label == CLEAN:
        return BlindChoice(p, None, f"looks clean: left as it is {p.describe()[len(CLEAN) + 1:]}",
                           clean=True)
    if grey and p.label == HAZE:
        why = (f"greyscale: haze is told partly by faded colour, which a grey photo always "
               f"has, so the guess {p.describe()} is not trusted")
        if if_unsure == "restore":
            return BlindChoice(p, p.label, f"{why}; restoring with {p.label} (--if-unsure "
                                           "restore)")
        return BlindChoice(p, None, f"{why}: not restored; name it with --degradation NAME, or "
                                    "give --if-unsure restore")
    if not p.unsure:
        return BlindChoice(p, p.label, f"predicted {p.describe()}")
    top_two = (f"{p.label} (p={p.probability:.2f}) or {p.runner_up} "
               f"(p={p.runner_up_probability:.2f})")
    if p.label == CLEAN:  # the top guess is clean, however sure: nothing to restore
        return BlindChoice(p, None, f"unsure (below {p.threshold:.2f}): {top_two}; the top "
                                    "guess is clean: left as it is", clean=True)
    if if_unsure == "restore":
        return BlindChoice(p, p.label, f"unsure (below {p.threshold:.2f}): {top_two}; restoring "
                                       f"with {p.label} (--if-unsure restore)")
    return BlindChoice(p, None, f"unsure (below {p.threshold:.2f}): {top_two}; not restored "
                                f"(--if-unsure stop): name it with --degradation NAME, or "
                                "give --if-unsure restore")


def restore_as(model: torch.nn.Module, image: torch.Tensor, label: str,
               prompt_of: Callable[[str], torch.Tensor], device: torch.device, *,
               tile: int = 0, overlap: int = 32, amp: str | None = None) -> torch.Tensor:
    """``image`` (3xHxW) as blind mode leaves it for the predicted ``label``: untouched when it
    is ``clean``, else restored on ``device`` with that degradation's prompt. The one rule the
    blind scores of ``eval`` and of validation during training follow."""
    if label == CLEAN:
        return image
    return restore(model, image.to(device), prompt_of(label), tile=tile, overlap=overlap,
                   amp=amp)


def blind_restore(model: torch.nn.Module, classifier: DegradationClassifier,
                  image: torch.Tensor | np.ndarray, prompt_of: Callable[[str], torch.Tensor],
                  *, if_unsure: str = IF_UNSURE[0], threshold: float | None = None,
                  tile: int = 0, overlap: int = 32, amp: str | None = None
                  ) -> tuple[torch.Tensor | None, BlindChoice]:
    """Classify one image (3xHxW tensor or HxWx3 array in [0, 1]), choose its prompt and
    restore it: (restored 3xHxW, or ``None`` when left as it is: clean or unsure, the choice). ``prompt_of`` maps a
    degradation name to its embedding (e.g. ``lambda d: bank(d)[0]``)."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    device = next(model.parameters()).device
    choice = choose_degradation(classifier.predict(image, threshold), if_unsure, is_grey(image))
    if choice.degradation is None:
        return None, choice
    out = restore(model, image.to(device), prompt_of(choice.degradation), tile=tile,
                  overlap=overlap, amp=amp)
    return out, choice
