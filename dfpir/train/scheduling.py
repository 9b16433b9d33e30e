"""The optimiser and learning-rate schedule of a training stage, and the hyperparameters a
``--resume-with-changes`` applies to a stage resumed in its middle."""

from __future__ import annotations

import logging
import math

import torch

from ..config import StageConfig

logger = logging.getLogger(__name__)


class TrainerScheduling:
    """The optimiser and schedule methods of ``Trainer`` (which provides ``cfg``, ``model`` and
    ``progress``)."""

    def _make_optimizer(self, stage: StageConfig, iters_per_epoch: int) -> None:
        t = self.cfg.train
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=stage.lr,
                                          betas=tuple(t.betas), weight_decay=t.weight_decay)
        if t.scheduler_step == "epoch":
            steps = stage.t_max_epochs or stage.epochs
        elif stage.t_max_epochs:
            steps = stage.t_max_epochs * iters_per_epoch
        else:
            steps = self._stage_iters(stage, iters_per_epoch)
        if t.scheduler == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=max(steps, 1), eta_min=t.eta_min)
        elif t.scheduler == "constant":
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)
        else:
            raise ValueError(f"train.scheduler must be 'cosine' or 'constant', got {t.scheduler!r}")
        if t.scheduler_step not in ("epoch", "iteration"):
            raise ValueError(f"train.scheduler_step must be 'epoch' or 'iteration', "
                             f"got {t.scheduler_step!r}")

    def _apply_changed_hyperparameters(self, stage: StageConfig, pending: dict) -> None:
        """After loading a mid-stage optimizer/scheduler state (which carries the old values),
        apply what ``--resume-with-changes`` changed: betas, weight decay, the stage's lr (the
        schedule is recomputed at its current step from the new lr)."""
        t = self.cfg.train
        for group in self.optimizer.param_groups:
            group["betas"], group["weight_decay"] = tuple(t.betas), t.weight_decay
        stored = pending.get("config", {}).get("train", {})
        try:
            old_lr = stored["stages"][self.progress.stage]["lr"]
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

    @staticmethod
    def _stage_iters(stage: StageConfig, iters_per_epoch: int) -> int:
        total = stage.epochs * iters_per_epoch
        return min(total, stage.max_iters) if stage.max_iters else total
