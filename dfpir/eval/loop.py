"""The one evaluation loop: restore every image of a test set and score it.

``restored_images`` walks a test set (items ``(degraded, clean, task, name)``) and yields each
restored image with its timing; ``evaluate_set`` (``scripts/eval.py``) and
``dfpir.train.scoring.validate`` (validation during training) both consume it, so the
inputs, prompts, tiling and autocast are handled once.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ..data import loader_workers, write_image
from ..device import sync_device
from ..restore.inference import restore
from .metrics import ImageMetrics, compute_metrics

__all__ = ["ImageResult", "MeanScores", "Restored", "SetResult", "evaluate_set", "restored_images"]

PromptSource = torch.Tensor | Callable[[str], torch.Tensor | None] | None


@dataclass
class Restored:
    """One test image after restoration: the input, the target, the output and its time."""

    index: int
    degraded: torch.Tensor
    clean: torch.Tensor
    task: str
    name: str
    output: torch.Tensor  # on the model's device
    seconds: float


def restored_images(model: torch.nn.Module, dataset: Dataset, prompt: PromptSource, *,
                    device: torch.device, tile: int = 0, overlap: int = 32,
                    amp: str | None = None, max_images: int = 0, num_workers: int = 0
                    ) -> Iterator[Restored]:
    """Restore the first ``max_images`` (0: all) images of ``dataset`` in order.

    ``prompt``: one embedding for the whole set, a function of the item's task, or ``None``
    (the baseline). ``num_workers`` loader workers read ahead (capped at the CPU count).
    """
    if max_images > 0 and len(dataset) > max_images:
        dataset = Subset(dataset, range(max_images))
    workers = loader_workers(num_workers) if len(dataset) > 1 else 0
    loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda")
    for index, (degraded, clean, task, image_name) in enumerate(loader):
        embedding = prompt(task) if callable(prompt) else prompt
        start = time.perf_counter()
        output = restore(model, degraded.to(device, non_blocking=True), embedding, tile=tile,
                         overlap=overlap, amp=amp)
        sync_device(device)
        yield Restored(index, degraded, clean, task, str(image_name), output,
                       time.perf_counter() - start)


@dataclass
class ImageResult:
    """The scores of one restored test image."""

    image: str
    psnr: float
    ssim: float
    seconds: float


class MeanScores:
    """The mean PSNR and SSIM over ``self.images`` (items with ``psnr`` and ``ssim``), nan
    when there are none: the protocol's per-set numbers, for every kind of set result."""

    images: list

    @property
    def psnr(self) -> float:
        return sum(r.psnr for r in self.images) / len(self.images) if self.images else math.nan

    @property
    def ssim(self) -> float:
        return sum(r.ssim for r in self.images) / len(self.images) if self.images else math.nan


@dataclass
class SetResult(MeanScores):
    """One test set: its per-image scores and their means (the protocol's numbers)."""

    name: str
    task: str
    images: list[ImageResult] = field(default_factory=list)

    @property
    def seconds_per_image(self) -> float:
        return sum(r.seconds for r in self.images) / len(self.images) if self.images else 0.0


def evaluate_set(
    model: torch.nn.Module,
    dataset: Dataset,
    name: str,
    prompt: torch.Tensor | None,
    *,
    device: torch.device,
    tile: int = 0,
    overlap: int = 32,
    quantize: bool = False,
    amp: str | None = None,
    max_images: int = 0,
    image_dir: Path | None = None,
    num_workers: int = 0,
    metric_threads: int = 2,
    progress: bool = True,
) -> SetResult:
    """Restore and score every image of one test set (items ``(degraded, clean, task, name)``),
    optionally writing the restored images to ``image_dir``.

    The metrics (SSIM takes about as long as a GPU forward pass on a large image) and the
    image writing run in ``metric_threads`` background threads while the next image is
    restored; the results are collected in order, so they do not depend on it.
    """
    task = getattr(dataset, "task", None) or getattr(getattr(dataset, "dataset", None), "task", "")
    result = SetResult(name, task)
    total = min(len(dataset), max_images) if max_images > 0 else len(dataset)
    bar = tqdm(total=total, desc=name, unit="img", disable=not progress,
               dynamic_ncols=True, file=sys.stderr)
    pending: deque[tuple[str, float, Future]] = deque()

    def collect() -> None:
        image_name, seconds, future = pending.popleft()
        scores = future.result()
        result.images.append(ImageResult(image_name, scores.psnr, scores.ssim, seconds))
        bar.update(1)
        bar.set_postfix(psnr=f"{result.psnr:.2f}", ssim=f"{result.ssim:.4f}")

    with ThreadPoolExecutor(max_workers=max(1, metric_threads)) as pool:
        for item in restored_images(model, dataset, prompt, device=device, tile=tile,
                                    overlap=overlap, amp=amp, max_images=max_images,
                                    num_workers=num_workers):
            save_to = image_dir / name / f"{item.name}.png" if image_dir is not None else None
            future = pool.submit(_score_and_save, item.output.cpu(), item.clean, quantize,
                                 save_to)
            pending.append((item.name, item.seconds, future))
            while len(pending) > 2 * max(1, metric_threads):
                collect()
        while pending:
            collect()
    bar.close()
    return result


def _score_and_save(output: torch.Tensor, clean: torch.Tensor, quantize: bool,
                    path: Path | None) -> ImageMetrics:
    if path is not None:
        write_image(path, output)
    return compute_metrics(output, clean, quantize=quantize)


