"""The optimiser and learning-rate schedule of one training stage, what a resumed stage loads
back, and the hyperparameters a ``--resume-with-changes`` applies in a stage's middle."""

from __future__ import annotations

import logging
import math

import torch

from ..config import StageConfig, TrainConfig
from ..models.compiling import resolve_compile_mode
from .world_resume import restart_schedule_at

logger = logging.getLogger(__name__)


class StageSchedule:
    """Adam and the stage's schedule (cosine or constant), stepped per epoch (the release) or
    per iteration. ``stage_iters`` is the stage's length in iterations (its ``max_iters``
    included), the cosine's period when stepped per iteration without ``t_max_epochs``."""

    def __init__(self, model: torch.nn.Module, stage: StageConfig, train: TrainConfig,
                 iters_per_epoch: int, stage_iters: int) -> None:
        self.stage, self.train = stage, train
        # the fast modes (train.compile) also take Adam's fused kernel: one launch for all the
        # parameters instead of a loop over them; the same update, other rounding
        device = next(model.parameters()).device
        fused = resolve_compile_mode(train.compile, device) != "none" or None
        self.optimizer = torch.optim.Adam(model.parameters(), lr=stage.lr,
                                          betas=tuple(train.betas),
                                          weight_decay=train.weight_decay, fused=fused)
        if train.scheduler_step == "epoch":
            steps = stage.t_max_epochs or stage.epochs
        elif train.scheduler_step == "iteration":
            steps = (stage.t_max_epochs * iters_per_epoch if stage.t_max_epochs
                     else stage_iters)
        else:
            raise ValueError(f"train.scheduler_step must be 'epoch' or 'iteration', "
                             f"got {train.scheduler_step!r}")
        if train.scheduler == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=max(steps, 1), eta_min=train.eta_min)
        elif train.scheduler == "constant":
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)
        else:
            raise ValueError(f"train.scheduler must be 'cosine' or 'constant', got "
                             f"{train.scheduler!r}")

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def after_iteration(self) -> None:
        if self.train.scheduler_step == "iteration":
            self.scheduler.step()

    def after_epoch(self) -> None:
        if self.train.scheduler_step == "epoch":
            self.scheduler.step()

    def state(self) -> tuple[dict, dict]:
        """(optimiser state, scheduler state) for a checkpoint."""
        return self.optimizer.state_dict(), self.scheduler.state_dict()

    def load(self, saved: dict, stage_index: int, done: int, world_changed: bool) -> None:
        """Continue a stage from a checkpoint's optimiser and scheduler state. ``done``
        iterations of it are behind; when the number of processes changed and the schedule
        counts iterations, those counted other batches, so this world's schedule restarts at
        ``done``. Then what ``--resume-with-changes`` changed is applied."""
        self.optimizer.load_state_dict(saved["optimizer"])
        if world_changed and self.train.scheduler_step == "iteration":
            restart_schedule_at(self.scheduler, self.optimizer, done)
        else:
            self.scheduler.load_state_dict(saved["scheduler"])
        self._apply_changes(saved.get("config", {}).get("train", {}), stage_index)

    def _apply_changes(self, stored: dict, stage_index: int) -> None:
        """After loading a mid-stage state (which carries the old values), apply betas, weight
        decay and the stage's lr (the schedule recomputed at its current step from the new
        lr)."""
        t, stage = self.train, self.stage
        for group in self.optimizer.param_groups:
            group["betas"], group["weight_decay"] = tuple(t.betas), t.weight_decay
        try:
            old_lr = stored["stages"][stage_index]["lr"]
            old_eta = stored["eta_min"]
        except (KeyError, IndexError, TypeError):
            return
        if old_lr == stage.lr and old_eta == t.eta_min:
            return  # unchanged: keep the loaded state bit for bit
        sched, step = self.scheduler, self.scheduler.last_epoch
        if isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR):
            sched.eta_min = t.eta_min
            lr = t.eta_min + (stage.lr - t.eta_min) * (1 + math.cos(math.pi * step
                                                                     / sched.T_max)) / 2
        else:
            lr = stage.lr
        sched.base_lrs = [stage.lr] * len(self.optimizer.param_groups)
        for group in self.optimizer.param_groups:
            group["initial_lr"], group["lr"] = stage.lr, lr
        sched._last_lr = [lr] * len(self.optimizer.param_groups)
        logger.info("resumed with lr %g (was %g): lr now %g at scheduler step %d", stage.lr,
                    old_lr, lr, step)
