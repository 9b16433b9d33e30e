"""The degradation classifier: image statistics (``features``) and a small MLP, trained on
crops of the training mix. Ours, not the paper's (see the README, "Faithfulness").

    clf = train_classifier(cfg)                  # cfg: an ExperimentConfig
    prediction = clf.predict(rgb)                # HxWx3 float in [0, 1] (or 3xHxW torch)
    prediction.label, prediction.probability, prediction.runner_up
    ckpt["classifier"] = clf.to_state()          # tensors, lists and numbers: weights_only-safe
    clf = DegradationClassifier.from_state(ckpt["classifier"])
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..config.classifier import CLEAN, ClassifierConfig
from ..data import DataError, build_train_dataset
from ..data.tasks import TASKS, validate_task
from ..models.checkpoint import CheckpointError
from .features import FEATURE_NAMES, grid_crops, image_features

if TYPE_CHECKING:
    from ..config import ExperimentConfig

__all__ = ["ClassifierError", "ClassifierStopped", "DegradationClassifier", "Prediction",
           "classifier_classes", "classifier_from_checkpoint", "sample_training_crops",
           "train_classifier"]

logger = logging.getLogger(__name__)

#: 2: the config records ``clean_class`` (version 1 states have no "clean" class and stored
#: ``if_unsure: restore``, then the only default; they load with today's default instead).
STATE_VERSION = 2


class ClassifierError(CheckpointError):
    """No classifier where one is needed, or one that cannot be read."""


@dataclass
class Prediction:
    """The classifier's answer for one image."""

    label: str
    probability: float
    runner_up: str | None
    runner_up_probability: float
    probabilities: dict[str, float]
    threshold: float

    @property
    def unsure(self) -> bool:
        """The top probability is below the threshold."""
        return self.probability < self.threshold

    def describe(self) -> str:
        """One line: the prediction, its probability and the runner-up."""
        text = f"{self.label} (p={self.probability:.2f}"
        if self.runner_up is not None:
            text += f"; runner-up {self.runner_up} p={self.runner_up_probability:.2f}"
        return text + ")"


#: The smallest side the statistics can judge: the coarsest ones (finite differences of the
#: 4x average, a 9-pixel window) need a 4x4 image at a quarter of the resolution.
MIN_SIDE = 16


class UnjudgeableImageError(DataError):
    """An image the classifier cannot judge (too small, or one flat colour): that image alone
    is reported, the others go on."""


def check_judgeable(image: np.ndarray | torch.Tensor) -> None:
    """Raise ``UnjudgeableImageError`` for an image (HxWx3 numpy or [1x]3xHxW torch) smaller
    than ``MIN_SIDE`` on a side or of one colour: its statistics say nothing about a
    degradation."""
    if isinstance(image, np.ndarray):
        height, width = image.shape[:2]
    else:
        height, width = image.shape[-2:]
    if min(height, width) < MIN_SIDE:
        raise UnjudgeableImageError(
            f"{width}x{height} is too small for --degradation auto to judge (at least "
            f"{MIN_SIDE}x{MIN_SIDE}); give --degradation NAME")
    values = torch.as_tensor(np.asarray(image) if isinstance(image, np.ndarray) else image)
    if float(values.max() - values.min()) < 1.0 / 255.0:
        raise UnjudgeableImageError("the image is one flat colour: there is no degradation "
                                    "for --degradation auto to judge; left as it is")


class DegradationClassifier(nn.Module):
    """Feature standardisation + MLP (two hidden layers) over ``FEATURE_NAMES``, applied to up
    to ``config.max_crops`` crops of an image whose log-probabilities are averaged."""

    def __init__(self, classes: Sequence[str], config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.classes = [c if c == CLEAN else validate_task(c) for c in classes]
        if len(self.classes) < 2:
            raise DataError(f"the classifier needs at least two classes, got {self.classes}")
        self.config = config or ClassifierConfig()
        n, hidden = len(FEATURE_NAMES), self.config.hidden
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))
        self.net = nn.Sequential(nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, len(self.classes)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) of features (B, len(FEATURE_NAMES))."""
        return self.net((features - self.mean) / self.std)

    @torch.no_grad()
    def probabilities(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(classes,) probabilities of one image (HxWx3 numpy or 3xHxW torch, in [0, 1]): the
        softmax of the crops' mean log-probability (every crop is evidence; a crop where the
        degradation is faint, such as the near part of a hazy scene, weighs less than it would
        in a mean of probabilities)."""
        check_judgeable(image)
        crops = grid_crops(image, self.config.crop, self.config.max_crops)
        log_probs = torch.log_softmax(self(image_features(crops)), dim=1)
        return torch.softmax(log_probs.mean(dim=0), dim=0)

    def predict(self, image: np.ndarray | torch.Tensor, threshold: float | None = None
                ) -> Prediction:
        """The most probable degradation of one image, its runner-up and whether it is unsure
        (top probability below ``threshold``, default ``config.threshold``)."""
        was_training = self.training
        self.eval()
        probs = self.probabilities(image)
        self.train(was_training)
        order = torch.argsort(probs, descending=True).tolist()
        top = order[0]
        second = order[1] if len(order) > 1 else None
        return Prediction(
            label=self.classes[top], probability=float(probs[top]),
            runner_up=self.classes[second] if second is not None else None,
            runner_up_probability=float(probs[second]) if second is not None else 0.0,
            probabilities={c: float(p) for c, p in zip(self.classes, probs, strict=True)},
            threshold=self.config.threshold if threshold is None else float(threshold),
        )

    # -------------------------------------------------------------- saving

    def to_state(self) -> dict:
        """Everything needed to rebuild it (config, classes, weights); ``weights_only``-safe."""
        return {
            "version": STATE_VERSION,
            "kind": "features_mlp",
            "classes": list(self.classes),
            "features": list(FEATURE_NAMES),
            "config": dataclasses.asdict(self.config),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }

    @classmethod
    def from_state(cls, state: Mapping) -> DegradationClassifier:
        """Rebuild from ``to_state()``; ``ClassifierError`` when it does not fit this code."""
        if not isinstance(state, Mapping) or state.get("kind") != "features_mlp":
            raise ClassifierError("not a degradation classifier of this project (expected a "
                                  "mapping with kind 'features_mlp')")
        if list(state.get("features", [])) != list(FEATURE_NAMES):
            raise ClassifierError("the classifier was trained on other image statistics than "
                                  "this version of dfpir computes; train it again "
                                  "(scripts/train_classifier.py)")
        try:
            stored = dict(state["config"])
            stored.setdefault("clean_class", CLEAN in list(state["classes"]))
            if int(state.get("version", 1)) < 2:  # its "restore" was the old default
                stored["if_unsure"] = ClassifierConfig.if_unsure
            config = ClassifierConfig(**stored)
            model = cls(list(state["classes"]), config)
            model.load_state_dict(state["state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError, DataError) as err:
            raise ClassifierError(f"the stored classifier cannot be read: {err}") from err
        return model.eval()


def classifier_from_checkpoint(ckpt: Mapping, source: str = "the checkpoint"
                               ) -> DegradationClassifier | None:
    """The classifier stored in a checkpoint (``ckpt["classifier"]``, or a file holding only a
    classifier), or ``None`` when it has none."""
    state = ckpt.get("classifier") if isinstance(ckpt, Mapping) else None
    if state is None and isinstance(ckpt, Mapping) and ckpt.get("kind") == "features_mlp":
        state = ckpt
    if state is None:
        return None
    try:
        return DegradationClassifier.from_state(state)
    except ClassifierError as err:
        raise ClassifierError(f"{source}: {err}") from err


# ------------------------------------------------------------------ training


def _classes(cfg: ExperimentConfig) -> list[str]:
    if cfg.classifier.tasks:
        return [validate_task(t) for t in cfg.classifier.tasks]
    tasks = {t.task for t in cfg.data.train_tasks if t.repeat > 0}
    if cfg.data.builtin.enabled and cfg.data.builtin.use_for_train:
        tasks |= set(cfg.data.builtin.tasks)
    return [t for t in TASKS if t in tasks]


def _sample_crops(datasets: Sequence, count: int, rng: np.random.Generator, which: int
                  ) -> torch.Tensor:
    """Features of ``count`` random training crops from ``datasets`` (drawn by size):
    ``which`` 0 the degraded crop, 1 its clean target."""
    sizes = np.array([len(d) for d in datasets], dtype=float)
    features, crops = [], []
    for _ in range(count):
        dataset = datasets[int(rng.choice(len(datasets), p=sizes / sizes.sum()))]
        crops.append(dataset.sample(int(rng.integers(len(dataset))), rng)[which])
        if len(crops) == 256:
            features.append(image_features(torch.stack(crops)))
            crops = []
    if crops:
        features.append(image_features(torch.stack(crops)))
    return torch.cat(features)


class ClassifierStopped(Exception):  # noqa: N818 (a stop, not a failure)
    """A stop request (``stop()`` true) ended the classifier's training: nothing stored."""


def sample_training_crops(cfg: ExperimentConfig, classes: Sequence[str],
                          stop: Callable[[], bool] | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, F) and labels (N,) of ``samples_per_task`` random degraded training crops
    per class, drawn from the config's training mix (the same datasets, degradations and
    augmentation as the restoration network's) with the classifier's own seed; the ``clean``
    class gets the clean targets of crops drawn from every task's datasets. ``stop`` is asked
    before each class's crops (``ClassifierStopped``)."""
    c = cfg.classifier
    data = dataclasses.replace(cfg.data, patch_size=c.crop)
    mixed = build_train_dataset(data)
    parts: dict[str, list] = {}
    for dataset, _ in mixed.parts:
        parts.setdefault(dataset.task, []).append(dataset)
    missing = [t for t in classes if t not in parts and t != CLEAN]
    if missing:
        raise DataError(f"the classifier's classes {missing} have no training data in this "
                        "config (classifier.tasks must be among the training tasks)")
    rng = np.random.default_rng(c.seed)
    features, labels = [], []
    for label, task in enumerate(classes):
        if stop is not None and stop():
            raise ClassifierStopped("stopped while the classifier's crops were drawn")
        if task == CLEAN:  # the clean targets of every task's crops, the same images
            datasets = [d for t in classes if t != CLEAN for d in parts[t]]
            features.append(_sample_crops(datasets, c.samples_per_task, rng, 1))
        else:
            features.append(_sample_crops(parts[task], c.samples_per_task, rng, 0))
        labels.append(torch.full((c.samples_per_task,), label, dtype=torch.long))
    return torch.cat(features), torch.cat(labels)


def fit_classifier(features: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                   config: ClassifierConfig, stop: Callable[[], bool] | None = None
                   ) -> DegradationClassifier:
    """Train the MLP on precomputed features (full batch, Adam, cross-entropy), with its own
    generator: the global random state is left as it was. ``stop`` is asked before each step
    (a run's stop request: ``ClassifierStopped``)."""
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):  # the CPU generator only
        torch.manual_seed(config.seed)
        torch.set_num_threads(1)  # tiny matrices: extra threads only add overhead
        try:
            model = DegradationClassifier(classes, config)
            model.mean.copy_(features.mean(dim=0))
            model.std.copy_(features.std(dim=0).clamp_min(1e-6))
            optimizer = torch.optim.Adam(model.net.parameters(), lr=config.lr,
                                         weight_decay=config.weight_decay)
            model.train()
            for _ in range(config.steps):
                if stop is not None and stop():
                    raise ClassifierStopped("stopped while the classifier trained")
                loss = nn.functional.cross_entropy(model(features), labels,
                                                   label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        finally:
            torch.set_num_threads(threads)
    model.eval()
    with torch.no_grad():
        accuracy = float((model(features).argmax(dim=1) == labels).float().mean())
    logger.info("classifier: %d crops, %d classes, final loss %.4f, training-crop accuracy "
                "%.1f%%", len(labels), len(classes), float(loss.detach()), 100 * accuracy)
    return model


def classifier_classes(cfg: ExperimentConfig) -> list[str]:
    """The degradations the classifier of ``cfg`` learns to tell apart (its ``tasks``, else
    the training mix's); ``DataError`` when there are fewer than two, which a run checks
    before its training, not after."""
    classes = _classes(cfg)
    if len(classes) < 2:
        raise DataError(f"the classifier needs at least two training tasks, got {classes}: "
                        "train on more tasks, or set classifier.enabled: false")
    return classes


def train_classifier(cfg: ExperimentConfig, stop: Callable[[], bool] | None = None
                     ) -> DegradationClassifier:
    """Train the degradation classifier of ``cfg.classifier`` on ``cfg``'s training mix
    (``stop``: see ``fit_classifier``)."""
    start = time.perf_counter()
    classes = classifier_classes(cfg)
    if cfg.classifier.clean_class:
        classes = [*classes, CLEAN]
    features, labels = sample_training_crops(cfg, classes, stop)
    sampled = time.perf_counter()
    model = fit_classifier(features, labels, classes, cfg.classifier, stop)
    logger.info("classifier trained in %.1f s (crops and statistics %.1f s, fit %.1f s)",
                time.perf_counter() - start, sampled - start, time.perf_counter() - sampled)
    return model
