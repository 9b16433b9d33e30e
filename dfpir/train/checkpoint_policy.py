"""What a training checkpoint holds and when it may be written: never non-finite weights,
never weights whose last step diverged; and where to go on after a divergence."""

from __future__ import annotations

import dataclasses
import math

import torch

from ..config import config_to_dict
from ..models.checkpoint import non_finite_keys
from ..models.orders import order_record
from .checkpointing import atomic_save, rng_state
from .errors import NonFiniteLossError
from .losses import compute_loss
from .rundir import drop_set_aside


class TrainerCheckpoints:
    """The checkpoint methods of ``Trainer`` (which provides the model, optimiser, scheduler,
    bank, context, progress, ``window`` and ``_check_window``)."""

    def _state(self) -> dict:
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": None,  # bf16 autocast needs no loss scaling
            "progress": dataclasses.asdict(self.progress),
            "world_size": self.ctx.world_size,
            "rng": rng_state(),
            "config": config_to_dict(self.cfg),
            "channel_orders": order_record(self.model, self.bank.names, self.bank.embeddings),
            **({"classifier": self.classifier_state} if self.classifier_state else {}),
        }

    def save(self, *names: str) -> None:
        """Write the current state as ``checkpoints/<name>.pt`` for each name (rank 0 only).
        Non-finite weights are never written: ``NonFiniteLossError`` instead."""
        if len(self.window) and not self.ctx.distributed:
            self._check_window()  # under torchrun every save follows a check of all ranks
        if not self.ctx.is_main:
            return
        state = self._state()
        bad = non_finite_keys(state["model"])
        if bad:
            raise NonFiniteLossError(
                f"the weights became non-finite (NaN or inf) in {len(bad)} parameter(s), e.g. "
                f"{bad[0]}, by global step {self.progress.global_step}; {', '.join(names)} not "
                f"written. {self._last_good()}")
        check = self._loss_after_step()
        if check is not None and not math.isfinite(check):
            raise NonFiniteLossError(
                f"the weights after global step {self.progress.global_step} give a non-finite "
                f"loss ({check}) on that step's batch: the step diverged; {', '.join(names)} "
                f"not written. {self._last_good()}")
        for name in names:
            atomic_save(state, self.ckpt_dir / f"{name}.pt", self._go_on())
            if name == "latest":
                self._latest_step = self.progress.global_step
        if getattr(self, "_aside", False):  # --overwrite: the new run has a checkpoint now
            drop_set_aside(self.run_dir)
            self._aside = False

    @torch.no_grad()
    def _loss_after_step(self) -> float | None:
        """The loss of the last training batch under the current weights: a step can leave
        finite weights that no longer give finite outputs (a runaway lr), and those must not
        become a checkpoint. One forward per save; ``None`` before the first step."""
        batch = getattr(self, "_last_batch", None)
        if batch is None:
            return None
        degraded, clean, tasks = batch
        t = self.cfg.train
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=t.bf16):
                restored = self.model(degraded, self.bank(tasks, self.ctx.device))
            return float(compute_loss(t.loss, restored.float(), clean, t.psnr_loss_floor))
        finally:
            self.model.train(was_training)

    def _go_on(self, options: str = "") -> str:
        """How to go on with this run: ``--resume`` only when a ``latest.pt`` exists for it
        to continue from, else start again."""
        if (self.ckpt_dir / "latest.pt").is_file():
            return f"continue with --resume{options} --run-dir {self.run_dir}"
        return (f"start again with --overwrite --run-dir {self.run_dir} (no checkpoint was "
                "written yet, so --resume cannot continue it)")

    def _last_good(self) -> str:
        """Where to go on after a divergence: the last good checkpoint that exists, if any."""
        latest = self.ckpt_dir / "latest.pt"
        lr = f"train.stages[{self.progress.stage}].lr"
        if latest.is_file():
            step = f" (global step {self._latest_step})" if self._latest_step is not None else ""
            return (f"The last good checkpoint is {latest}{step}; continue from it with "
                    f"--resume --resume-with-changes and a lower {lr}, or train.grad_clip")
        return (f"No checkpoint was written yet ({latest} does not exist); start again with "
                f"--overwrite and a lower {lr}, or train.grad_clip")
