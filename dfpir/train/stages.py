"""Where a run is (stage, epoch, iteration, step, best scores) and the sizes of its stages: the
batch each process loads, the iterations of an epoch and of a stage, each stage's training set
checked to give at least one full batch."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from ..config import ConfigError, StageConfig, TrainConfig
from ..data import DataConfig, build_train_dataset


@dataclasses.dataclass
class Progress:
    """Where a run is: stage, epoch within the stage, iteration within the epoch."""

    stage: int = 0
    epoch: int = 0
    iteration: int = 0
    global_step: int = 0
    best_psnr: float = -math.inf
    test_best_psnr: float = -math.inf  # best mean test PSNR of train.select_on_test


def resume_position(progress: Progress, stages: Sequence[StageConfig]) -> str:
    """Where a resumed run goes on, in the progress line's numbering (from 1), and when the
    stage's epochs (changed with --resume-with-changes) are already behind it, that it ends."""
    if progress.stage >= len(stages):
        return "after its last stage (its end is left: the classifier, the final evaluation)"
    where = (f"at stage {progress.stage + 1}/{len(stages)}, epoch {progress.epoch + 1}, after "
             f"iteration {progress.iteration} of it")
    epochs = stages[progress.stage].epochs
    if progress.epoch >= epochs:
        where += f" (past the stage's {epochs} epoch(s) now: the stage ends there)"
    return where


def process_batch_size(batch_size: int, world_size: int, is_global: bool) -> int:
    """The batch each process loads: ``batch_size`` itself (per process, as the release under
    torchrun), or, when it is the global batch, its share, which must divide evenly."""
    if not is_global:
        return batch_size
    if batch_size % world_size:
        raise ConfigError(
            f"train.batch_size_is_global: a global batch of {batch_size} cannot be split evenly "
            f"over {world_size} processes; use a multiple of {world_size} or per-process batches"
        )
    return batch_size // world_size


class StageSizes:
    """The sizes of the stages of ``train`` on ``world_size`` processes."""

    def __init__(self, train: TrainConfig, data: DataConfig, world_size: int) -> None:
        self.train, self.data, self.world_size = train, data, world_size

    def batch(self, stage: StageConfig) -> int:
        return process_batch_size(stage.batch_size, self.world_size,
                                  self.train.batch_size_is_global)

    def describe(self, stage: StageConfig) -> str:
        """What one optimiser step averages over: the lr is never scaled with processes."""
        batch, world = self.batch(stage), self.world_size
        return (f"stage {stage.name!r}: {world} process(es) x batch {batch} = effective global "
                f"batch {batch * world}, lr {stage.lr:g} (not scaled with the number of "
                f"processes); batch_size {stage.batch_size} is "
                f"{'global' if self.train.batch_size_is_global else 'per process'}")

    def iters_per_epoch(self, dataset_size: int, stage: StageConfig) -> int:
        per_rank = math.ceil(dataset_size / self.world_size)
        return per_rank // self.batch(stage)

    @staticmethod
    def stage_iters(stage: StageConfig, iters_per_epoch: int) -> int:
        """The stage's iterations: its epochs, or its ``max_iters`` when fewer."""
        total = stage.epochs * iters_per_epoch
        return min(total, stage.max_iters) if stage.max_iters else total

    def train_set(self, index: int):
        """The training set of stage ``index`` (its crops of the stage's patch size), checked
        to give at least one full batch per process: every stage is checked before the first
        starts."""
        stage = self.train.stages[index]
        dataset = build_train_dataset(dataclasses.replace(self.data,
                                                          patch_size=stage.patch_size))
        if stage.epochs and self.iters_per_epoch(len(dataset), stage) == 0:
            raise ConfigError(
                f"train.stages[{index}] ({stage.name!r}): {len(dataset)} training samples give "
                f"no full batch of {self.batch(stage)} per process (of {self.world_size}); "
                "lower its batch_size or add data")
        return dataset
