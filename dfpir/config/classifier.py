"""The ``classifier:`` section of an experiment config (ours; not in the paper).

Kept free of heavy imports so ``dfpir.config`` can include it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CLEAN", "ClassifierConfig", "IF_UNSURE"]

#: What ``--degradation auto`` does with an image whose top probability is below the threshold:
#: leave it as it is and say so (``stop``, the default: a wrong prompt can add artefacts to an
#: image that needed nothing) or restore it with the top guess, saying so (``restore``).
IF_UNSURE: tuple[str, ...] = ("stop", "restore")

#: The classifier's "no degradation" outcome: an image that looks clean is left as it is.
CLEAN = "clean"


@dataclass
class ClassifierConfig:
    """The degradation classifier for blind restoration (``--degradation auto``).

    Off by default: the paper's training is unchanged. With ``enabled: true``, ``scripts/train.py``
    trains it after the restoration network, on crops of the same training mix (labels are the
    tasks, plus ``clean`` for the clean crops of the same images when ``clean_class``), and
    stores it in the run's checkpoints; ``scripts/train_classifier.py`` trains it for any
    existing checkpoint.
    """

    enabled: bool = False  # train the blind degradation classifier after the network (ours)
    tasks: list[str] = field(default_factory=list)  # classes ([] = the config's training tasks)
    crop: int = 96  # crop side (pixels) the statistics are computed on, at full resolution
    samples_per_task: int = 400  # training crops per task
    hidden: int = 64  # width of the two hidden layers of the MLP
    steps: int = 600  # full-batch Adam steps
    lr: float = 0.01  # the classifier's learning rate
    weight_decay: float = 1.0e-4  # the classifier's weight decay
    label_smoothing: float = 0.1  # keeps the crop probabilities from saturating
    max_crops: int = 24  # crops per image at prediction (their probabilities are averaged)
    threshold: float = 0.6  # below this top probability a prediction is "unsure"
    if_unsure: Literal["stop", "restore"] = "stop"  # leave it as it is (or restore with the guess)
    clean_class: bool = True  # a "clean" class trained on clean crops of the same images
    seed: int = 0  # the classifier's own seed

    def __post_init__(self) -> None:
        if self.crop < 16:
            raise ValueError(f"classifier.crop must be >= 16, got {self.crop}")
        for name in ("samples_per_task", "steps", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"classifier.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"classifier.threshold must be in [0, 1], got {self.threshold}")
        if self.if_unsure not in IF_UNSURE:
            raise ValueError(f"classifier.if_unsure must be one of {IF_UNSURE}, "
                             f"got {self.if_unsure!r}")
        if self.max_crops < 1:
            raise ValueError(f"classifier.max_crops must be >= 1, got {self.max_crops}")
