"""Resuming on another number of processes than the checkpoint was written by.

``EpochSampler`` deals an epoch's permutation out rank by rank (rank r takes positions r,
r + world, ...), so after ``k`` iterations of ``b`` images on ``w`` ranks exactly the first
``k * b * w`` images of the permutation were trained on, whatever ``w``: a run resumed on
``w'`` ranks starts at that position (rounded down to a whole iteration of its own)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class WorldChange:
    """The iteration to continue the epoch at, and what the user should know about it."""

    iteration: int
    messages: list[str]


def resume_on_world(iteration: int, old_world: int, new_world: int, old_batch: int,
                    new_batch: int) -> WorldChange:
    """Where a mid-epoch checkpoint of ``old_world`` processes x ``old_batch`` continues on
    ``new_world`` x ``new_batch`` (per-process batches)."""
    messages = [f"resumed a checkpoint of {old_world} process(es) on {new_world}: the run goes "
                "on from the same epoch and image, but not bit for bit (the same number of "
                "processes resumes bit-exactly)"]
    old_global, new_global = old_world * old_batch, new_world * new_batch
    if old_global != new_global:
        messages.append(
            f"the global batch changes from {old_world} x {old_batch} = {old_global} to "
            f"{new_world} x {new_batch} = {new_global} images per optimiser step (batch_size "
            "is per process; train.batch_size_is_global: true keeps it when it divides)")
    seen = iteration * old_global
    new_iteration, repeated = divmod(seen, new_global)
    if repeated:
        messages.append(f"{seen} images of this epoch were trained on, not a whole number of "
                        f"batches of {new_global}: the last {repeated} are trained on again")
    return WorldChange(new_iteration, messages)


def restart_schedule_at(scheduler, optimizer: torch.optim.Optimizer, done: int) -> None:
    """A fresh per-iteration schedule (its T_max in this world's iterations) moved to step
    ``done`` of its stage, with the optimiser's learning rates set to match."""
    scheduler.last_epoch = done
    if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        lrs = scheduler._get_closed_form_lr()
        for group, lr in zip(optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        scheduler._last_lr = list(lrs)


def continue_on_world(progress, train, old_world: int, sizes) -> list[str]:
    """Move ``progress`` (a ``stages.Progress`` in a stage of ``train``) to the image where
    ``old_world`` processes left its epoch, for this world's ``sizes`` (``StageSizes``);
    returns what to tell the user."""
    from .stages import process_batch_size

    stage = train.stages[progress.stage]
    old_batch = process_batch_size(stage.batch_size, old_world, train.batch_size_is_global)
    change = resume_on_world(progress.iteration, old_world, sizes.world_size, old_batch,
                             sizes.batch(stage))
    progress.iteration = change.iteration
    return change.messages
