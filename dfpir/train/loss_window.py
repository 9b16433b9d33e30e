"""The steps since the last check: each step's loss and gradient norm kept on the device, read
back together every ``train.log_every`` steps (one host-device synchronisation, one
all-reduce)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .distributed import DistContext, all_reduce_sum


@dataclass
class StepInfo:
    """Where a step was and what it trained on, for the message of a non-finite one."""

    stage: int
    epoch: int
    iteration: int
    global_step: int
    tasks: list[str]


@dataclass
class WindowResult:
    """What a check found: per-step losses (mean over ranks), any rank's stop request, and the
    first step with a non-finite loss or gradient norm (``None`` when all were finite)."""

    losses: list[float]
    stop: bool
    stop_signal: int | None = None  # the signal behind the request (SIGTERM if ranks differ)
    norms: list[float] = field(default_factory=list)
    task_losses: dict[str, float] = field(default_factory=dict)  # mean per-item loss per task
    bad: StepInfo | None = None
    bad_loss: float = 0.0
    bad_norm: float = 0.0

    @property
    def last_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None

    def problem(self) -> str:
        """What went wrong in ``bad`` (the first non-finite step), for the error message."""
        bad = self.bad
        if not math.isfinite(self.bad_loss):
            return (f"non-finite loss {self.bad_loss} at stage {bad.stage} epoch {bad.epoch} "
                    f"iteration {bad.iteration} (global step {bad.global_step}), batch tasks "
                    f"{sorted(set(bad.tasks))}")
        return (f"non-finite gradient norm {self.bad_norm} at stage {bad.stage} global step "
                f"{bad.global_step} (loss {self.bad_loss:.4g}); no checkpoint holds the weights "
                "of that step")


class LossWindow:
    """Collects each step's loss, gradient norm and, per task of ``tasks``, the sum and count
    of its items' losses as device tensors (no synchronisation) and checks them in one read: a
    NaN on any rank stays NaN in the sum."""

    def __init__(self, tasks: list[str] | None = None, device: torch.device | None = None
                 ) -> None:
        self.tasks = list(tasks or [])
        eye = torch.eye(len(self.tasks), device=device)  # a task's one-hot row, on the device
        self.one_hot = {task: eye[i] for i, task in enumerate(self.tasks)}
        self.values: list[torch.Tensor] = []
        self.infos: list[StepInfo] = []

    def add(self, loss: torch.Tensor, norm: torch.Tensor, info: StepInfo,
            item_losses: torch.Tensor | None = None) -> None:
        """One step: its loss and gradient norm; with ``item_losses`` (one per item of the
        batch, whose tasks ``info.tasks`` names), the per-task sums and counts too."""
        parts = [loss.detach().float().reshape(1), norm.detach().float().reshape(1)]
        if self.tasks:
            if item_losses is None:
                zeros = torch.zeros(len(self.tasks), device=loss.device)
                parts += [zeros, zeros]
            else:
                rows = torch.stack([self.one_hot[task] for task in info.tasks])
                parts += [item_losses.detach().float() @ rows, rows.sum(0)]
        self.values.append(torch.cat(parts))
        self.infos.append(info)

    def __len__(self) -> int:
        return len(self.values)

    def check(self, ctx: DistContext, stop: bool, signal: int | None = None) -> WindowResult:
        """Sum the window (and the stop flags and their signals) over the ranks and read it
        back; every rank must call this at the same steps. Empties the window."""
        flag = torch.tensor([float(signal or 0), float(bool(signal)), float(stop)],
                            device=ctx.device)
        flat = torch.cat([torch.stack(self.values).flatten(), flag]) if self.values else flag
        host = all_reduce_sum(flat, ctx).tolist()  # the one synchronisation
        infos, self.values, self.infos = self.infos, [], []
        width, n = 2 + 2 * len(self.tasks), len(self.tasks)
        rows = [host[i * width:(i + 1) * width] for i in range(len(infos))]
        pairs = [(row[0] / ctx.world_size, row[1] / ctx.world_size)
                 for row in rows]  # DDP gives every rank the same gradient
        signals, signalled = host[-3], host[-2]
        stop_signal = (None if not signalled else int(signals / signalled)
                       if signals % signalled == 0 else 15)  # two signals: as SIGTERM
        result = WindowResult([loss for loss, _ in pairs], host[-1] > 0, stop_signal,
                              norms=[norm for _, norm in pairs])
        for j, task in enumerate(self.tasks):
            total = sum(row[2 + j] for row in rows)
            count = sum(row[2 + n + j] for row in rows)
            if count:
                result.task_losses[task] = total / count
        for info, (loss, norm) in zip(infos, pairs, strict=True):
            if not (math.isfinite(loss) and math.isfinite(norm)):
                result.bad, result.bad_loss, result.bad_norm = info, loss, norm
                break
        return result
