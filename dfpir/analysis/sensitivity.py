"""How close each DGCPM channel order is to changing: a prompt-sensitivity diagnostic.

The DGCPM puts the 2C channels in descending order of the DGM scores, a hard sort: when two
scores are nearly equal, a tiny change of the prompt embedding (another CLIP arithmetic, another
GPU, fp16 rounding) swaps them, and the checkpoint then sees a channel order it was never trained
with. For every DGPB and task this reports the smallest gap between consecutive sorted scores
and how many of the 2C positions change when the embedding gets random noise of a given norm
relative to its own (1e-4, 1e-3, 1e-2 by default). Differences between CLIP arithmetics are
about 1e-3 relative (fp16 with fp16 LayerNorms against OpenAI's mixed fp16).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..models import DFPIR

NOISE_LEVELS: tuple[float, ...] = (1e-4, 1e-3, 1e-2)


@dataclass
class SensitivityRow:
    """One DGPB and one task: the score gaps and the positions that move under noise."""

    block: str
    task: str
    positions: int  # 2C
    min_gap: float  # smallest gap between consecutive sorted DGM scores
    score_std: float  # spread of the scores, to read the gap against
    changed_mean: dict[float, float] = field(default_factory=dict)  # level -> mean over trials
    changed_max: dict[float, int] = field(default_factory=dict)  # level -> max over trials


@torch.no_grad()
def prompt_sensitivity(model: DFPIR, prompts: torch.Tensor, tasks: Sequence[str],
                       levels: Sequence[float] = NOISE_LEVELS, trials: int = 8,
                       seed: int = 0) -> list[SensitivityRow]:
    """Rows for every DGPB with a DGCPM and every task (``prompts``: (T, D), one per task).

    Noise of level ``eps`` is a Gaussian direction scaled to ``eps * ||p||``; the same
    ``trials`` directions (from ``seed``) are used for every block, so the blocks compare."""
    if prompts.shape[0] != len(tasks):
        raise ValueError(f"{prompts.shape[0]} prompts for {len(tasks)} tasks")
    gen = torch.Generator().manual_seed(seed)
    directions = torch.randn(len(levels), trials, *prompts.shape, generator=gen,
                             dtype=torch.float64)
    rows = []
    for name, block in model.dgpbs().items():
        if block.dgcpm is None or block.dgm is None:
            continue
        weight = block.dgm.fc1.weight
        base = prompts.to(weight)
        values, order = block.dgcpm.channel_order(block.dgm(base))
        norms = base.double().norm(dim=-1, keepdim=True)
        moved: list[list[np.ndarray]] = []
        for li, eps in enumerate(levels):
            per_trial = []
            for trial in range(trials):
                d = directions[li, trial].to(weight.device)
                noisy = base.double() + eps * norms * d / d.norm(dim=-1, keepdim=True)
                _, other = block.dgcpm.channel_order(block.dgm(noisy.to(weight)))
                per_trial.append((other != order).sum(-1).cpu().numpy())
            moved.append(per_trial)
        gaps = (values[:, :-1] - values[:, 1:]).double().cpu().numpy()
        for t, task in enumerate(tasks):
            counts = [np.array([m[t] for m in moved[li]]) for li in range(len(levels))]
            rows.append(SensitivityRow(
                block=name, task=task, positions=int(values.shape[1]),
                min_gap=float(gaps[t].min()), score_std=float(values[t].double().std()),
                changed_mean={eps: float(c.mean()) for eps, c in zip(levels, counts)},
                changed_max={eps: int(c.max()) for eps, c in zip(levels, counts)},
            ))
    if not rows:
        raise ValueError("this model has no DGCPM (the baseline, or model.dgcpm off): its "
                         "DGPBs take no channel order from the prompt")
    return rows


def format_sensitivity(rows: Sequence[SensitivityRow], levels: Sequence[float] = NOISE_LEVELS
                       ) -> str:
    """A markdown table: one line per DGPB and task; changed positions as mean (max)."""
    head = ["DGPB", "task", "2C", "min gap", "score std"]
    head += [f"changed at {eps:g} mean (max)" for eps in levels]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.block, r.task, str(r.positions), f"{r.min_gap:.2e}", f"{r.score_std:.3f}"]
        cells += [f"{r.changed_mean[eps]:.1f} ({r.changed_max[eps]})" for eps in levels]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv_rows(path, rows: Sequence[SensitivityRow], levels: Sequence[float] = NOISE_LEVELS):
    """The rows as CSV, one column per level for the mean and the max of changed positions."""
    from .common import write_csv

    flat = []
    for r in rows:
        row = {"block": r.block, "task": r.task, "positions": r.positions,
               "min_gap": r.min_gap, "score_std": r.score_std}
        for eps in levels:
            row[f"changed_mean_{eps:g}"] = r.changed_mean[eps]
            row[f"changed_max_{eps:g}"] = r.changed_max[eps]
        flat.append(row)
    return write_csv(path, flat)
