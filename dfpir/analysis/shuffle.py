"""Paper Figure 7: the channel order the DGCPM of each DGPB applies for each degradation prompt.

The DGM maps a prompt to one score per channel of the doubled (2C) space; the DGCPM puts the
channels in descending score order. ``order[t, j]`` is the source channel placed at position
``j`` for task ``t`` (the identity order is ``order[j] = j``). The order depends on the prompt
only, not on the image, so no image is needed. The pairwise fraction of positions whose source
channel differs between two tasks measures how differently the prompts perturb the features
(0: the same order; about 1 for two unrelated permutations).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..models import DFPIR
from .common import Analysis, new_figure, save_figure, write_csv


@dataclass
class ShuffleResult:
    """Per DGPB (with a DGCPM): the channel order and sorted scores of every task."""

    tasks: list[str]
    orders: dict[str, np.ndarray]  # block -> (T, 2C) int: source channel at each position
    scores: dict[str, np.ndarray]  # block -> (T, 2C) the sorted DGM scores

    def differ(self, block: str) -> np.ndarray:
        """(T, T) fraction of positions whose source channel differs between two tasks."""
        return differ_matrix(self.orders[block])

    def mean_differ(self) -> np.ndarray:
        """``differ`` averaged over the blocks (each block counts once)."""
        return np.mean([self.differ(b) for b in self.orders], axis=0)


def differ_matrix(orders: np.ndarray) -> np.ndarray:
    """(T, T) fraction of positions where two rows of ``orders`` (T, P) differ."""
    return (orders[:, None, :] != orders[None, :, :]).mean(-1)


@torch.no_grad()
def channel_orders(model: DFPIR, prompts: torch.Tensor
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """For each DGPB with a DGCPM: the order ``dgcpm.channel_order(dgm(prompt))`` of each
    prompt (T, 2C) and its sorted scores, as the block's forward computes them."""
    orders, scores = {}, {}
    for name, block in model.dgpbs().items():
        if block.dgcpm is None or block.dgm is None:
            continue
        prompt = prompts.to(block.dgm.fc1.weight)
        values, order = block.dgcpm.channel_order(block.dgm(prompt))
        orders[name] = order.cpu().numpy().astype(np.int64)
        scores[name] = values.float().cpu().numpy()
    return orders, scores


def compute_shuffle(analysis: Analysis, tasks: Sequence[str] | None = None) -> ShuffleResult:
    """The channel orders of ``tasks`` (default: every degradation the config knows)."""
    from .common import default_tasks

    tasks = list(tasks or default_tasks(analysis.cfg))
    if not analysis.has_prompts:
        raise ValueError("this model has no DGPB (the Restormer baseline): no channel shuffle")
    if not tasks:
        raise ValueError("no tasks to draw: pass --tasks")
    orders, scores = channel_orders(analysis.model, analysis.prompts(tasks))
    if not orders:
        raise ValueError("this model has no DGCPM (model.dgcpm is off): its DGPBs do not "
                         "shuffle channels")
    return ShuffleResult(tasks, orders, scores)


def plot_shuffle(result: ShuffleResult, title: str = ""):
    """One column per DGPB: the orders as an image (identity on top), as a scatter of
    position -> source channel against the diagonal, and the pairwise differ matrix."""
    import matplotlib

    blocks = list(result.orders)
    tasks = result.tasks
    n_tasks = len(tasks)
    fig = new_figure(3.6 * len(blocks) + 0.6, 4.2 + 3.0 + 0.32 * n_tasks + 2.6)
    heights = [1.0 + 0.1 * n_tasks, 1.8, 1.3 + 0.12 * n_tasks]
    grid = fig.add_gridspec(3, len(blocks), height_ratios=heights)
    colours = matplotlib.colormaps["tab10" if n_tasks <= 10 else "tab20"]
    for col, block in enumerate(blocks):
        orders = result.orders[block]
        positions = orders.shape[1]
        identity = np.arange(positions)

        ax = fig.add_subplot(grid[0, col])
        ax.imshow(np.vstack([identity, orders]), aspect="auto", cmap="viridis",
                  interpolation="nearest", vmin=0, vmax=positions - 1)
        ax.set_yticks(range(n_tasks + 1), ["identity", *tasks], fontsize=7)
        ax.set_xlabel("position after DGCPM", fontsize=8)
        ax.set_title(f"{block} (2C = {positions})\ncolour = source channel", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)

        ax = fig.add_subplot(grid[1, col])
        ax.plot(identity, identity, color="0.6", lw=0.8, ls="--", label="identity")
        size = max(1.0, 24.0 / np.sqrt(positions))
        for i, task in enumerate(tasks):
            ax.scatter(identity, orders[i], s=size, color=colours(i % colours.N), label=task,
                       alpha=0.8, linewidths=0)
        ax.set_xlabel("position", fontsize=8)
        ax.set_ylabel("source channel", fontsize=8)
        ax.tick_params(labelsize=7)
        if col == 0:
            ax.legend(fontsize=6, markerscale=3, loc="upper left", framealpha=0.8)

        ax = fig.add_subplot(grid[2, col])
        _matrix(ax, result.differ(block), tasks)
        ax.set_title("fraction of positions that differ", fontsize=8)
    head = f"{title}: " if title else ""
    mean = result.mean_differ()
    off = mean[~np.eye(n_tasks, dtype=bool)]
    summary = f"mean over task pairs and blocks {off.mean():.3f}" if off.size else ""
    fig.suptitle(f"{head}DGCPM channel order per degradation prompt; {summary}", fontsize=10)
    fig.tight_layout()
    return fig


def _matrix(ax, values: np.ndarray, tasks: list[str]) -> None:
    ax.imshow(values, vmin=0, vmax=1, cmap="magma")
    ticks = range(len(tasks))
    ax.set_xticks(ticks, tasks, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(ticks, tasks, fontsize=7)
    if len(tasks) <= 10:
        for i in ticks:
            for j in ticks:
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if values[i, j] < 0.6 else "black")


def identity_stats(result: ShuffleResult) -> list[dict]:
    """Per block and task: the fraction of channels left in place and the mean displacement
    |order[j] - j| / 2C (about 1/3 for a random permutation)."""
    rows = []
    for block, orders in result.orders.items():
        positions = np.arange(orders.shape[1])
        for task, order in zip(result.tasks, orders, strict=True):
            rows.append(dict(block=block, task=task, channels=len(order),
                             fixed_fraction=float((order == positions).mean()),
                             mean_displacement=float(np.abs(order - positions).mean()
                                                     / len(order))))
    return rows


def save_shuffle(result: ShuffleResult, out_dir: str | os.PathLike, title: str = "",
                 stem: str = "shuffle") -> dict[str, Path]:
    """Write ``shuffle.png``, the differ matrices (``shuffle_differ.csv``, long format with
    block ``mean`` for the average), ``shuffle_identity.csv`` and the orders (``shuffle.npz``)."""
    out = Path(out_dir)
    paths = {"png": save_figure(plot_shuffle(result, title), out / f"{stem}.png")}
    rows = []
    matrices = {b: result.differ(b) for b in result.orders} | {"mean": result.mean_differ()}
    for block, matrix in matrices.items():
        for i, a in enumerate(result.tasks):
            for j, b in enumerate(result.tasks):
                rows.append(dict(block=block, task_a=a, task_b=b,
                                 fraction_differ=float(matrix[i, j])))
    paths["csv"] = write_csv(out / f"{stem}_differ.csv", rows)
    paths["identity"] = write_csv(out / f"{stem}_identity.csv", identity_stats(result))
    paths["npz"] = out / f"{stem}.npz"
    arrays = {f"{b}/order": o for b, o in result.orders.items()}
    arrays |= {f"{b}/scores": s for b, s in result.scores.items()}
    arrays |= {f"{b}/differ": m for b, m in matrices.items()}
    np.savez_compressed(paths["npz"], tasks=np.asarray(result.tasks), **arrays)
    return paths
