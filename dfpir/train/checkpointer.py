"""The checkpoints of a run (``<run>/checkpoints/<name>.pt``, rank 0): never non-finite weights,
never the weights of a step that diverged; after ``--overwrite`` the old run stays set aside
until the new one's first checkpoint; and where to go on after a failure."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import torch

from ..config import ExperimentConfig, config_to_dict
from ..models.checkpoint import non_finite_keys
from ..models.orders import order_record
from ..prompts import PromptBank
from .checkpoint_io import atomic_save, load_training_state, rng_state
from .errors import NonFiniteLossError
from .rundir import clear_owned_files, drop_set_aside, restore_set_aside
from .schedule import StageSchedule
from .stages import Progress

logger = logging.getLogger(__name__)


def training_state(model: torch.nn.Module, schedule: StageSchedule | None, progress: Progress,
                   world_size: int, cfg: ExperimentConfig, bank: PromptBank,
                   classifier_state: dict | None) -> dict:
    """What a training checkpoint holds: weights, optimiser and schedule, where the run is,
    the RNG, the config, the channel orders of its prompts (and the classifier, once)."""
    optimizer, scheduler = schedule.state() if schedule is not None else (None, None)
    return {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer,
        "scheduler": scheduler,
        "scaler": None,  # bf16 autocast needs no loss scaling
        "progress": dataclasses.asdict(progress),
        "world_size": world_size,
        "rng": rng_state(),
        "config": config_to_dict(cfg),
        "channel_orders": order_record(model, bank.names, bank.embeddings),
        **({"classifier": classifier_state} if classifier_state else {}),
    }


class Checkpointer:
    """Writes a run's checkpoints. ``set_aside``: ``--overwrite`` moved the old run's files
    aside (``rundir.set_aside_owned_files``); the first checkpoint drops them, ``close``
    without one puts them back. ``latest_step`` is the global step ``latest.pt`` holds."""

    def __init__(self, run_dir: Path, set_aside: bool = False,
                 latest_step: int | None = None) -> None:
        self.run_dir, self.dir = run_dir, run_dir / "checkpoints"
        self.set_aside, self.latest_step = set_aside, latest_step

    @property
    def latest(self) -> Path:
        return self.dir / "latest.pt"

    def save(self, names: tuple[str, ...], state: dict, loss_after_step: float | None,
             global_step: int, stage_index: int) -> None:
        """Write ``state`` as each ``checkpoints/<name>.pt``, unless its weights are non-finite
        or give a non-finite loss on the last step's batch (``loss_after_step``): then
        ``NonFiniteLossError`` naming the last good checkpoint."""
        bad = non_finite_keys(state["model"])
        if bad:
            raise NonFiniteLossError(
                f"the weights became non-finite (NaN or inf) in {len(bad)} parameter(s), e.g. "
                f"{bad[0]}, by global step {global_step}; {', '.join(names)} not written. "
                f"{self.last_good(stage_index)}")
        if loss_after_step is not None and not math.isfinite(loss_after_step):
            raise NonFiniteLossError(
                f"the weights after global step {global_step} give a non-finite loss "
                f"({loss_after_step}) on that step's batch: the step diverged; "
                f"{', '.join(names)} not written. {self.last_good(stage_index)}")
        for name in names:
            atomic_save(state, self.dir / f"{name}.pt", self.go_on())
            if name == "latest":
                self.latest_step = global_step
        if self.set_aside:  # --overwrite: the new run has a checkpoint now
            drop_set_aside(self.run_dir)
            self.set_aside = False

    def add_to_best(self, key: str, value: object) -> None:
        """Give ``best.pt`` (an earlier validation's best weights), if there is one, a part
        trained after it (the classifier)."""
        best = self.dir / "best.pt"
        if best.is_file():
            atomic_save({**load_training_state(best), key: value}, best, self.go_on())

    def close(self) -> None:
        """``--overwrite`` and no checkpoint was written: put the old run back."""
        if self.set_aside:
            clear_owned_files(self.run_dir)  # the failed attempt's own (its events, its log)
            back = restore_set_aside(self.run_dir)
            logger.warning("--overwrite: the new run wrote no checkpoint; the previous run's %d "
                           "file(s) are put back in %s", len(back), self.run_dir)
            self.set_aside = False

    def go_on(self, options: str = "") -> str:
        """How to go on with this run: ``--resume`` only when a ``latest.pt`` exists for it
        to continue from, else start again. An ``--overwrite`` that wrote no checkpoint puts
        the previous run back (``close``): that one can be resumed."""
        if self.set_aside:
            return (f"this --overwrite wrote no checkpoint, so the previous run's files are put "
                    f"back in {self.run_dir}: start again with --overwrite, or continue the "
                    f"previous run with --resume{options}")
        if self.latest.is_file():
            return f"continue with --resume{options} --run-dir {self.run_dir}"
        return (f"start again with --overwrite --run-dir {self.run_dir} (no checkpoint was "
                "written yet, so --resume cannot continue it)")

    def last_good(self, stage_index: int) -> str:
        """Where to go on after a divergence: the last good checkpoint that exists, if any."""
        lr = f"train.stages[{stage_index}].lr"
        if self.set_aside:
            return (f"This --overwrite wrote no checkpoint; the previous run's files are put "
                    f"back in {self.run_dir}. Start again with --overwrite and a lower {lr}, "
                    "or train.grad_clip")
        if self.latest.is_file():
            step = f" (global step {self.latest_step})" if self.latest_step is not None else ""
            return (f"The last good checkpoint is {self.latest}{step}; continue from it with "
                    f"--resume --resume-with-changes and a lower {lr}, or train.grad_clip")
        return (f"No checkpoint was written yet ({self.latest} does not exist); start again "
                f"with --overwrite and a lower {lr}, or train.grad_clip")
