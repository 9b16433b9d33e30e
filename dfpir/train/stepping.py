"""One training step: forward, loss, backward, optimiser; the window of steps checked for
non-finite values (and for a stop request under torchrun), logging, and the saves and
selections due after a step."""

from __future__ import annotations

import time

import torch

from ..config import StageConfig
from ..device import is_out_of_memory
from ..errors import TrainingError
from .errors import NonFiniteLossError
from .losses import training_loss
from .step_window import StepInfo, WindowResult


class TrainerStepping:
    """The step methods of ``Trainer`` (which provides the model, ``net``, optimiser,
    scheduler, prompts, context, progress, ``window``, ``save`` and ``select_on_test``)."""

    def _train_batch(self, batch, stage: StageConfig, iters_per_epoch: int, stage_iters: int,
                     start: float) -> int:
        """One step; every ``log_every`` steps (and before a save, a selection or the epoch's
        end, the same steps on every rank) the window of steps is checked and logged."""
        t, p = self.cfg.train, self.progress
        degraded, clean, tasks = batch
        try:
            self._step(degraded, clean, list(tasks))
        except RuntimeError as err:
            if not is_out_of_memory(err):
                raise
            raise TrainingError(self._oom_message(stage, err)) from None
        p.iteration += 1
        p.global_step += 1
        done = p.epoch * iters_per_epoch + p.iteration
        self._bar.update(1)
        save = t.save_every_iters and p.global_step % t.save_every_iters == 0
        select = (t.select_on_test and t.select_every_iters and p.iteration < iters_per_epoch
                  and p.iteration % t.select_every_iters == 0)  # the epoch's end: as an epoch
        if (p.global_step % t.log_every == 0 or save or select or p.iteration >= iters_per_epoch
                or done >= stage_iters or (self.stop_requested and not self.ctx.distributed)):
            self._log(self._check_window(), start)
        if t.scheduler_step == "iteration":
            self.scheduler.step()
        if save:
            self.save("latest")
        if select:
            self.select_on_test(t.select_tolerance_iters, "iterations")
            self.net.train()
        return done

    def _check_window(self) -> WindowResult:
        """Read the steps since the last check (one sync, one all-reduce under torchrun):
        non-finite losses or gradients stop the run before any checkpoint holds their weights;
        a stop request of any rank becomes every rank's."""
        result = self.window.check(self.ctx, self.stop_requested)
        if self.ctx.distributed:
            self._stop_agreed = self.stop_requested = result.stop
        if result.bad is not None:
            raise NonFiniteLossError(f"{result.problem()}. {self._last_good()}")
        return result

    def _log(self, result: WindowResult, start: float) -> None:
        """The last checked step's loss on the progress bar and, every ``log_every`` steps,
        in TensorBoard."""
        p, loss = self.progress, result.last_loss
        if loss is None:
            return
        lr = self.optimizer.param_groups[0]["lr"]
        self._bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", epoch=p.epoch + 1)
        if self.writer and p.global_step % self.cfg.train.log_every == 0:
            self.writer.add_scalar("train/loss", loss, p.global_step)
            self.writer.add_scalar("train/lr", lr, p.global_step)
            self.writer.add_scalar("train/iters_per_s", p.iteration /
                                   (time.perf_counter() - start), p.global_step)

    def _oom_message(self, stage: StageConfig, err: BaseException) -> str:
        p = self.progress
        return (f"out of memory on {self.ctx.device} at stage {p.stage + 1} ({stage.name!r}) "
                f"global step {p.global_step + 1}, batch {self._batch(stage)} of "
                f"{stage.patch_size}x{stage.patch_size} crops per process "
                f"({str(err).splitlines()[0][:200]}). Lower train.stages[{p.stage}].batch_size "
                f"or patch_size, or set train.bf16: true; then "
                f"{self._go_on(' --resume-with-changes')}")

    def _step(self, degraded: torch.Tensor, clean: torch.Tensor, tasks: list[str]
              ) -> torch.Tensor:
        """One optimiser step; returns this rank's loss (on the device, not synchronised)."""
        t, device = self.cfg.train, self.ctx.device
        fmt = torch.channels_last if t.channels_last else torch.contiguous_format
        degraded = degraded.to(device, non_blocking=True).contiguous(memory_format=fmt)
        clean = clean.to(device, non_blocking=True)
        prompts = torch.stack([self._prompt_rows[task] for task in tasks])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=t.bf16):
            restored = self.net(degraded, prompts)
        loss = training_loss(t.loss, t.loss_weighting, restored.float(), clean, degraded,
                             t.psnr_loss_floor)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [q.grad for q in self.model.parameters() if q.grad is not None]
        if t.grad_clip:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm(grads)
        # checked with the other steps of the window (no synchronisation here): a non-finite
        # loss or gradient stops the run at the next check, before any checkpoint is written
        p = self.progress
        self.window.add(loss, norm, StepInfo(p.stage + 1, p.epoch + 1, p.iteration + 1,
                                             p.global_step + 1, tasks))
        self.optimizer.step()
        self._last_batch = (degraded, clean, tasks)
        return loss.detach()
