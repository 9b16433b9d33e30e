"""The README's restoration grid: degraded / restored / ground truth, one row per test set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..eval.metrics import psnr, ssim
from ..restore.inference import restore
from .common import Analysis, image_hwc, new_figure, save_figure, write_csv


@dataclass
class GridRow:
    """One test image: its three versions and their scores."""

    set_name: str
    task: str
    image: str
    degraded: np.ndarray  # HxWx3 in [0, 1]
    restored: np.ndarray
    clean: np.ndarray

    def scores(self) -> dict[str, float]:
        return dict(input_psnr=psnr(self.degraded, self.clean),
                    psnr=psnr(self.restored, self.clean),
                    input_ssim=ssim(self.degraded, self.clean),
                    ssim=ssim(self.restored, self.clean))


def compute_grid(analysis: Analysis, index: int = 0, sets: list[str] | None = None
                 ) -> list[GridRow]:
    """Restore image ``index`` of each test set (with the config's tiling settings)."""
    test_sets = analysis.test_sets()
    names = sets or list(test_sets)
    unknown = [n for n in names if n not in test_sets]
    if unknown:
        raise ValueError(f"unknown test set(s) {unknown}; this config has {list(test_sets)}")
    rows = []
    for name in names:
        dataset = test_sets[name]
        if len(dataset) <= index:
            continue
        degraded, clean, task, image = dataset[index]
        out = restore(analysis.model, degraded.to(analysis.device), analysis.prompts([task]),
                      tile=analysis.cfg.eval.tile, overlap=analysis.cfg.eval.tile_overlap)
        rows.append(GridRow(name, task, str(image), image_hwc(degraded), image_hwc(out),
                            image_hwc(clean)))
    if not rows:
        raise ValueError(f"no test set has an image {index}")
    return rows


def plot_grid(rows: list[GridRow], title: str = ""):
    """Rows of degraded | restored | ground truth with PSNR/SSIM in the titles."""
    aspect = max(r.degraded.shape[0] / r.degraded.shape[1] for r in rows)
    panel = 3.0
    fig = new_figure(3 * panel, len(rows) * panel * aspect + 0.5 + 0.3 * len(rows))
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for ax_row, row in zip(axes, rows, strict=True):
        s = row.scores()
        labels = [f"{row.set_name}: degraded\n{s['input_psnr']:.2f} dB / {s['input_ssim']:.3f}",
                  f"restored\n{s['psnr']:.2f} dB / {s['ssim']:.3f}", f"ground truth ({row.task})"]
        for ax, image, label in zip(ax_row, (row.degraded, row.restored, row.clean), labels,
                                    strict=True):
            ax.imshow(image)
            ax.set_title(label, fontsize=8)
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_grid(rows: list[GridRow], out_dir: str | os.PathLike, title: str = "",
              stem: str = "grid") -> dict[str, Path]:
    """Write ``grid.png`` and its scores ``grid.csv``."""
    out = Path(out_dir)
    paths = {"png": save_figure(plot_grid(rows, title), out / f"{stem}.png")}
    paths["csv"] = write_csv(out / f"{stem}.csv", [
        dict(set=r.set_name, task=r.task, image=r.image, **r.scores()) for r in rows])
    return paths
