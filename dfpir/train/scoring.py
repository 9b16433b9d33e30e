"""Validation during training: metrics of the restored and of the degraded inputs, samples,
and the closing table and figure of a run. The images go through ``dfpir.eval_loop``, the
loop ``scripts/eval.py`` uses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from ..blind.api import restore_as
from ..config import EvalConfig
from ..eval.loop import restored_images
from ..eval.metrics import psnr, ssim
from ..prompts import PromptBank
from ..restore.inference import restore


def _hwc(image: torch.Tensor) -> np.ndarray:
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def validate(model: torch.nn.Module, test_sets: dict[str, Dataset], bank: PromptBank,
             device: torch.device, max_images: int = 0, sample_images: int = 0,
             eval_cfg: EvalConfig | None = None,
             input_scores: dict[tuple[str, int], tuple[float, float]] | None = None,
             classifier: torch.nn.Module | None = None,
             shard: tuple[int, int] = (0, 1),
             reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
             ) -> tuple[dict[str, dict[str, float]], dict[str, torch.Tensor]]:
    """Mean PSNR/SSIM of the restored images and of the degraded inputs per test set, and a
    (degraded | restored | clean) strip of those of the first ``sample_images`` images of each
    set that this process scored.

    ``input_scores`` caches the inputs' (PSNR, SSIM) by (set, index) across calls: test inputs
    are fixed (seeded), so they need scoring once per run, not at every validation.
    ``shard=(rank, world)``: this process scores images rank, rank + world, ...; ``reduce``
    sums the per-set sums over the processes (every rank gets the means of every image).
    """
    input_scores = {} if input_scores is None else input_scores
    eval_cfg = eval_cfg or EvalConfig()
    was_training = model.training
    model.eval()
    results, samples = {}, {}
    for name, dataset in test_sets.items():
        count = len(dataset) if not max_images else min(max_images, len(dataset))
        sums = dict(psnr=0.0, ssim=0.0, input_psnr=0.0, input_ssim=0.0)
        if classifier is not None:
            sums.update(accuracy=0.0, blind_psnr=0.0, blind_ssim=0.0)
        strips = []
        mine = range(shard[0], count, shard[1])
        for item in restored_images(model, Subset(dataset, mine), lambda task: bank(task, device),
                                    device=device, tile=eval_cfg.tile,
                                    overlap=eval_cfg.tile_overlap):
            degraded, clean, out = item.degraded, item.clean, item.output
            i = mine[item.index]
            task = item.task
            restored, target = _hwc(out), _hwc(clean)
            scores = psnr(restored, target), ssim(restored, target)
            sums["psnr"] += scores[0]
            sums["ssim"] += scores[1]
            if classifier is not None:
                predicted = classifier.predict(degraded).label
                sums["accuracy"] += float(predicted == task)
                if predicted != task:  # "clean": left as it is, as restore -d auto does
                    blind = _hwc(restore_as(model, degraded, predicted,
                                            lambda t: bank(t, device), device,
                                            tile=eval_cfg.tile, overlap=eval_cfg.tile_overlap))
                    scores = psnr(blind, target), ssim(blind, target)
                sums["blind_psnr"] += scores[0]
                sums["blind_ssim"] += scores[1]
            if (name, i) not in input_scores:
                source = _hwc(degraded)
                input_scores[name, i] = (psnr(source, target), ssim(source, target))
            sums["input_psnr"] += input_scores[name, i][0]
            sums["input_ssim"] += input_scores[name, i][1]
            if i < sample_images:
                strips.append(torch.cat([degraded.cpu(), out.float().clamp(0, 1).cpu(),
                                         clean.cpu()], dim=2))
        if reduce is not None:
            totals = reduce(torch.tensor(list(sums.values()), dtype=torch.float64)).tolist()
            sums = dict(zip(sums, totals, strict=True))
        results[name] = {k: v / max(count, 1) for k, v in sums.items()}
        if strips:
            width = max(s.shape[2] for s in strips)
            samples[name] = torch.cat(
                [torch.nn.functional.pad(s, (0, width - s.shape[2])) for s in strips], dim=1)
    model.train(was_training)
    return results, samples


def format_results_table(results: dict[str, dict[str, float]]) -> str:
    """Markdown: per test set, the degraded input's PSNR/SSIM against the restored one's; with
    a degradation classifier, also its accuracy and the blind PSNR (predicted prompt) beside
    the restored (true prompt, oracle) one."""
    blind = bool(results) and all("blind_psnr" in m for m in results.values())
    extra_head = " classifier accuracy | blind PSNR |" if blind else ""
    lines = [
        "| test set | input PSNR | restored PSNR | gain (dB) | input SSIM | restored SSIM |"
        + extra_head,
        "|---|---|---|---|---|---|" + ("---|---|" if blind else ""),
    ]

    def extra(m: dict[str, float]) -> str:
        return f" {100 * m['accuracy']:.0f}% | {m['blind_psnr']:.2f} |" if blind else ""

    for name, m in results.items():
        lines.append(
            f"| {name} | {m['input_psnr']:.2f} | {m['psnr']:.2f} | "
            f"{m['psnr'] - m['input_psnr']:+.2f} | {m['input_ssim']:.3f} | {m['ssim']:.3f} |"
            + extra(m)
        )
    if results:
        keys = set.intersection(*(set(m) for m in results.values()))
        mean = {k: float(np.mean([m[k] for m in results.values()])) for k in keys}
        lines.append(
            f"| **mean** | {mean['input_psnr']:.2f} | {mean['psnr']:.2f} | "
            f"{mean['psnr'] - mean['input_psnr']:+.2f} | {mean['input_ssim']:.3f} | "
            f"{mean['ssim']:.3f} |" + extra(mean)
        )
    return "\n".join(lines)


def write_results_table(results: dict[str, dict[str, float]], path: Path) -> str:
    table = format_results_table(results)
    path.write_text(table + "\n")
    return table


@torch.no_grad()
def write_comparison_figure(model: torch.nn.Module, test_sets: dict[str, Dataset],
                            bank: PromptBank, device: torch.device, path: Path) -> None:
    """One row per test set: degraded, restored and clean versions of its first image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, d in test_sets.items() if len(d)]
    if not names:
        return
    model.eval()
    fig, axes = plt.subplots(len(names), 3, figsize=(9, 3 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        degraded, clean, task, _ = test_sets[name][0]
        out = restore(model, degraded.to(device), bank(task, device))
        images = [_hwc(degraded), _hwc(out), _hwc(clean)]
        titles = [f"{name}: degraded {psnr(images[0], images[2]):.2f} dB",
                  f"restored {psnr(images[1], images[2]):.2f} dB", "clean"]
        for ax, image, title in zip(axes[row], images, titles, strict=True):
            ax.imshow(image)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
