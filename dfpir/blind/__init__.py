"""Blind restoration (ours, not in the paper): a degradation classifier picks the prompt.

``classifier`` (image statistics + a small MLP, trained on crops of the training mix), ``api``
(predict, choose, restore), ``evaluation`` (accuracy, confusion, blind vs oracle, prompt matrix).
See the README, "Restore".
"""

from ..config.classifier import CLEAN, IF_UNSURE, ClassifierConfig
from .api import (
    BlindChoice,
    blind_restore,
    choose_degradation,
    is_grey,
    load_classifier,
    restore_as,
)
from .classifier import (
    ClassifierError,
    DegradationClassifier,
    Prediction,
    classifier_from_checkpoint,
    train_classifier,
)

__all__ = [
    "CLEAN",
    "IF_UNSURE",
    "BlindChoice",
    "ClassifierConfig",
    "ClassifierError",
    "DegradationClassifier",
    "Prediction",
    "blind_restore",
    "choose_degradation",
    "is_grey",
    "classifier_from_checkpoint",
    "load_classifier",
    "restore_as",
    "train_classifier",
]
