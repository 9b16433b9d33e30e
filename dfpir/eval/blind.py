"""Evaluating blind restoration: classifier accuracy and confusion per test set, the blind row
(every image restored with the predicted prompt) beside the oracle row (the true prompt), and
the prompt matrix (every test set restored with every prompt)."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..blind.api import restore_as
from ..blind.classifier import DegradationClassifier
from ..outputs import replaced
from ..restore.inference import restore
from .loop import MeanScores
from .metrics import compute_metrics
from .tables import markdown_table

__all__ = ["BlindImage", "BlindReport", "BlindSet", "PromptMatrix", "blind_markdown",
           "evaluate_blind", "prompt_matrix", "write_blind_files", "write_prompt_matrix"]

PromptOf = Callable[[str], torch.Tensor | None]


@dataclass
class BlindImage:
    """One test image: its prediction and its blind scores (the oracle's when they agree)."""

    image: str
    predicted: str
    probability: float
    psnr: float
    ssim: float


@dataclass
class BlindSet(MeanScores):
    """One test set under blind restoration."""

    name: str
    task: str
    images: list[BlindImage] = field(default_factory=list)
    oracle_psnr: float = math.nan
    oracle_ssim: float = math.nan

    @property
    def accuracy(self) -> float:
        if not self.images:
            return math.nan
        return sum(i.predicted == self.task for i in self.images) / len(self.images)

    def counts(self, classes: Sequence[str]) -> list[int]:
        """How many of its images were predicted as each class (a confusion-matrix row)."""
        return [sum(i.predicted == c for i in self.images) for c in classes]


@dataclass
class BlindReport:
    """Blind restoration over every test set."""

    classes: list[str]
    threshold: float
    sets: list[BlindSet]

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else math.nan

    @property
    def correct(self) -> int:
        return sum(i.predicted == s.task for s in self.sets for i in s.images)

    @property
    def total(self) -> int:
        return sum(len(s.images) for s in self.sets)

    def to_dict(self) -> dict:
        """The JSON form (what ``results.json`` holds under "blind")."""
        return {
            "classes": self.classes,
            "threshold": self.threshold,
            "accuracy": self.accuracy,
            "sets": {s.name: {
                "task": s.task, "accuracy": s.accuracy, "psnr": s.psnr, "ssim": s.ssim,
                "oracle_psnr": s.oracle_psnr, "oracle_ssim": s.oracle_ssim,
                "confusion": dict(zip(self.classes, s.counts(self.classes), strict=True)),
                "images": [vars(i) for i in s.images],
            } for s in self.sets},
        }


@torch.no_grad()
def evaluate_blind(
    model: torch.nn.Module,
    classifier: DegradationClassifier,
    datasets: Mapping[str, Dataset],
    oracle: Mapping[str, Sequence[tuple[float, float]]],
    prompt_of: PromptOf,
    *,
    device: torch.device,
    tile: int = 0,
    overlap: int = 32,
    quantize: bool = False,
    amp: str | None = None,
    max_images: int = 0,
) -> BlindReport:
    """Classify every test image and score its restoration with the predicted prompt.

    ``oracle[set]`` holds the (PSNR, SSIM) of each image restored with its true prompt, in the
    dataset's order; an image whose prediction is right reuses them (the same computation), so
    only the misclassified images are restored again. A degraded image predicted ``clean`` is
    wrong and scores the input itself (blind restoration leaves it as it is).
    """
    sets = []
    for name, dataset in datasets.items():
        task = dataset.task
        result = BlindSet(name, task)
        scores = list(oracle.get(name, []))
        count = len(dataset) if not max_images else min(max_images, len(dataset))
        for index in range(count):
            degraded, clean, _, image_name = dataset[index]
            prediction = classifier.predict(degraded)
            if prediction.label == task and index < len(scores):
                psnr, ssim = scores[index]
            else:  # "clean": left as it is, as restore --degradation auto leaves it
                output = restore_as(model, degraded, prediction.label, prompt_of, device,
                                    tile=tile, overlap=overlap, amp=amp)
                metrics = compute_metrics(output.cpu(), clean, quantize=quantize)
                psnr, ssim = metrics.psnr, metrics.ssim
            result.images.append(BlindImage(str(image_name), prediction.label,
                                            prediction.probability, psnr, ssim))
        if scores:
            result.oracle_psnr = sum(s[0] for s in scores[:count]) / len(scores[:count])
            result.oracle_ssim = sum(s[1] for s in scores[:count]) / len(scores[:count])
        sets.append(result)
    return BlindReport(list(classifier.classes), classifier.config.threshold, sets)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def blind_markdown(report: BlindReport) -> str:
    """The results.md section: oracle and blind rows per test set, the classifier's accuracy,
    and the confusion matrix (rows: test sets, columns: predicted degradation)."""
    names = [s.name for s in report.sets]
    oracle = [f"{s.oracle_psnr:.2f} / {s.oracle_ssim:.4f}" for s in report.sets]
    blind = [f"{s.psnr:.2f} / {s.ssim:.4f}" for s in report.sets]
    accuracy = [f"{100 * s.accuracy:.1f}% ({round(s.accuracy * len(s.images))}/"
                f"{len(s.images)})" for s in report.sets]
    mean_oracle = (_mean([s.oracle_psnr for s in report.sets]),
                   _mean([s.oracle_ssim for s in report.sets]))
    mean_blind = _mean([s.psnr for s in report.sets]), _mean([s.ssim for s in report.sets])
    rows = [
        ["oracle (true prompt)", *oracle, f"{mean_oracle[0]:.2f} / {mean_oracle[1]:.4f}"],
        ["blind (predicted prompt)", *blind, f"{mean_blind[0]:.2f} / {mean_blind[1]:.4f}"],
        ["classifier accuracy", *accuracy,
         f"{100 * report.accuracy:.1f}% ({report.correct}/{report.total})"],
    ]
    confusion = [[s.name, s.task, *map(str, s.counts(report.classes)),
                  f"{100 * s.accuracy:.1f}%"] for s in report.sets]
    lines = [
        "## Blind restoration (our degradation classifier, not in the paper)", "",
        "PSNR / SSIM with the true prompt (oracle) and with the prompt the classifier predicts "
        "for each image (blind).", "",
        markdown_table(["", *names, "mean"], rows), "",
        "Confusion (rows: test set and its true degradation; columns: predicted degradation; "
        "image counts):", "",
        markdown_table(["test set", "true", *report.classes, "accuracy"], confusion),
    ]
    return "\n".join(lines) + "\n"


def write_blind_files(report: BlindReport, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``confusion.csv`` (one row per test set) and ``blind_per_image.csv``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"confusion": out / "confusion.csv", "blind_per_image": out / "blind_per_image.csv"}
    with (replaced(paths["confusion"]) as tmp,
          tmp.open("w", newline="", encoding="utf-8") as handle):
        writer = csv.writer(handle)
        writer.writerow(["set", "true", *report.classes, "accuracy"])
        for s in report.sets:
            writer.writerow([s.name, s.task, *s.counts(report.classes), f"{s.accuracy:.4f}"])
    with (replaced(paths["blind_per_image"]) as tmp,
          tmp.open("w", newline="", encoding="utf-8") as handle):
        writer = csv.writer(handle)
        writer.writerow(["set", "true", "image", "predicted", "probability", "psnr", "ssim"])
        for s in report.sets:
            for i in s.images:
                writer.writerow([s.name, s.task, i.image, i.predicted, f"{i.probability:.4f}",
                                 f"{i.psnr:.4f}", f"{i.ssim:.5f}"])
    return paths


# ------------------------------------------------------------------ the prompt matrix


@dataclass
class PromptMatrix:
    """Mean PSNR/SSIM of every test set (rows) restored with every prompt (columns), and of
    the unrestored input."""

    sets: list[tuple[str, str]]  # (name, true task)
    prompts: list[str]
    scores: dict[tuple[str, str], tuple[float, float]]  # (set, prompt or "input") -> mean
    images: dict[str, int] = field(default_factory=dict)

    def markdown(self) -> str:
        """PSNR (dB), rows = test set (true degradation), columns = prompt given; the true
        prompt in bold."""
        rows = []
        for name, task in self.sets:
            cells = []
            for prompt in self.prompts:
                value = f"{self.scores[name, prompt][0]:.2f}"
                cells.append(f"**{value}**" if prompt == task else value)
            rows.append([f"{name} ({task})", *cells, f"{self.scores[name, 'input'][0]:.2f}"])
        return markdown_table(["true \\ prompt", *self.prompts, "input"], rows)


@torch.no_grad()
def prompt_matrix(model: torch.nn.Module, datasets: Mapping[str, Dataset],
                  prompts: Sequence[str], prompt_of: PromptOf, *, device: torch.device,
                  tile: int = 0, overlap: int = 32, quantize: bool = False,
                  amp: str | None = None, max_images: int = 0) -> PromptMatrix:
    """Restore every image of every test set with every prompt in ``prompts`` and score it."""
    scores: dict[tuple[str, str], tuple[float, float]] = {}
    images: dict[str, int] = {}
    for name, dataset in datasets.items():
        count = len(dataset) if not max_images else min(max_images, len(dataset))
        images[name] = count
        sums = {p: [0.0, 0.0] for p in [*prompts, "input"]}
        for index in range(count):
            degraded, clean, _, _ = dataset[index]
            source = compute_metrics(degraded, clean, quantize=quantize)
            sums["input"][0] += source.psnr
            sums["input"][1] += source.ssim
            image = degraded.to(device)
            for prompt in prompts:
                output = restore(model, image, prompt_of(prompt), tile=tile, overlap=overlap,
                                 amp=amp)
                metrics = compute_metrics(output.cpu(), clean, quantize=quantize)
                sums[prompt][0] += metrics.psnr
                sums[prompt][1] += metrics.ssim
        for key, (p, s) in sums.items():
            scores[name, key] = (p / max(count, 1), s / max(count, 1))
    return PromptMatrix([(n, d.task) for n, d in datasets.items()], list(prompts), scores,
                        images)


def write_prompt_matrix(matrix: PromptMatrix, out_dir: str | os.PathLike,
                        title: str = "") -> dict[str, Path]:
    """``prompt_matrix.csv`` (long form: set, true task, prompt, PSNR, SSIM) and
    ``prompt_matrix.md`` (the PSNR table)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"prompt_matrix_csv": out / "prompt_matrix.csv",
             "prompt_matrix_md": out / "prompt_matrix.md"}
    with (replaced(paths["prompt_matrix_csv"]) as tmp,
          tmp.open("w", newline="", encoding="utf-8") as handle):
        writer = csv.writer(handle)
        writer.writerow(["set", "true", "prompt", "images", "psnr", "ssim"])
        for name, task in matrix.sets:
            for prompt in [*matrix.prompts, "input"]:
                psnr, ssim = matrix.scores[name, prompt]
                writer.writerow([name, task, prompt, matrix.images.get(name, ""),
                                 f"{psnr:.4f}", f"{ssim:.5f}"])
    heading = f"# Prompt matrix{': ' + title if title else ''}"
    text = (f"{heading}\n\nMean PSNR (dB) of each test set (rows, with its true degradation) "
            "restored with each prompt (columns); the true prompt in bold; `input` is the "
            "unrestored input.\n\n" + matrix.markdown() + "\n")
    with replaced(paths["prompt_matrix_md"]) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return paths
