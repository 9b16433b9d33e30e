"""Setting up a training run: the checks before anything is written (config, run directory,
resumed checkpoint, data, every stage's batches), the model, the prompt bank, the run
directory's first files, and the progress a resumed run continues from."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from ..config import (
    ConfigError,
    ExperimentConfig,
    StageConfig,
    apply_override,
    build_dataclass,
    config_to_dict,
    save_config,
)
from ..data import DataError, build_test_datasets, build_train_dataset, check_data
from ..device import keep_freed_memory
from ..models import DFPIR
from ..models.checkpoint import check_state_dict
from ..models.precision import set_backend_precision
from ..prompts import DEGRADATIONS, PromptBank, build_encoder
from .checkpointing import load_training_state, set_rng_state
from .errors import RunDirError
from .rundir import (
    config_changes,
    record_changes,
    refuse_changes,
    remove_stale_temporaries,
    set_aside_owned_files,
)
from .world_resume import resume_on_world

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Progress:
    """Where a run is: stage, epoch within the stage, iteration within the epoch."""

    stage: int = 0
    epoch: int = 0
    iteration: int = 0
    global_step: int = 0
    best_psnr: float = -math.inf
    test_best_psnr: float = -math.inf  # best mean test PSNR of train.select_on_test


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


def stored_config(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()
                  ) -> ExperimentConfig:
    """The config stored in a run's ``checkpoints/latest.pt`` (with ``--set`` overrides): what
    ``--resume`` continues with when no config is given."""
    latest = Path(run_dir) / "checkpoints" / "latest.pt"
    if not latest.is_file():
        raise RunDirError(_no_checkpoint_message(Path(run_dir)))
    return _config_of(load_training_state(latest), latest, overrides)


def _config_of(state: dict, latest: Path, overrides=()) -> ExperimentConfig:
    raw = state.get("config")
    if not isinstance(raw, dict):
        raise RunDirError(f"{latest} stores no config; it was not written by this trainer")
    raw = dict(raw)
    origin = {key: f"the config stored in {latest}" for key in raw}
    for override in overrides:
        apply_override(raw, override, origin)
    return build_dataclass(ExperimentConfig, raw, "", origin)


def _no_checkpoint_message(run_dir: Path) -> str:
    latest = run_dir / "checkpoints" / "latest.pt"
    if (run_dir / "config.yaml").is_file():
        return (f"--resume: no checkpoint at {latest}: the run was stopped before its first "
                "checkpoint; start it again with --overwrite")
    return f"--resume: no checkpoint at {latest}; {run_dir} holds no run (is --run-dir right?)"


class TrainerSetup:
    """The set-up methods of ``Trainer`` (which provides ``run_dir``, ``ckpt_dir``, ``ctx`` and
    ``progress`` before calling ``_setup``)."""

    def _setup(self, cfg: ExperimentConfig | None, resume: bool, overwrite: bool,
               resume_with_changes: bool) -> None:
        latest = self.ckpt_dir / "latest.pt"
        state, changes = None, {}
        if resume:
            state = load_training_state(latest)  # refuses non-finite weights
            stored = _config_of(state, latest)
            cfg = cfg or stored
            changes = config_changes(config_to_dict(stored), config_to_dict(cfg))
            if not resume_with_changes:
                refuse_changes(changes)
        elif self.ctx.is_main and (self.run_dir / "config.yaml").exists() and not overwrite:
            how = ("pass --resume to continue it or --overwrite to start again there"
                   if latest.is_file() else "it was stopped before its first checkpoint, so "
                   "--resume cannot continue it: pass --overwrite to start again there")
            raise RunDirError(f"{self.run_dir} already holds a run; {how}")
        self.cfg = cfg
        set_backend_precision(cfg.train.tf32, cfg.train.cudnn_benchmark)
        if self.ctx.device.type == "cpu" and cfg.train.keep_freed_memory:
            keep_freed_memory()  # ~25% faster CPU steps: no page faults on every activation
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.model = DFPIR(cfg.model).to(self.ctx.device)
        torch.manual_seed(cfg.seed + self.ctx.rank)  # per-rank streams from here on
        if state is not None:
            check_state_dict(self.model, state["model"], str(latest))
            self.model.load_state_dict(state["model"])
        if cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = self.model
        if self.ctx.distributed:
            ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        if cfg.train.compile:
            self.net = torch.compile(self.net)

        report = check_data(cfg.data)  # fail before the first step, with every problem listed
        if not report.ok:
            logger.error("%s", report.format())
            first = next(f"{s.name} (task {s.task}): {p.splitlines()[0]}"
                         for s in report.sets for p in s.problems)
            more = (f" (and {report.problem_count - 1} more problems, listed above and by "
                    "`dfpir prepare --check --config CONFIG`)" if report.problem_count > 1
                    else "")
            raise DataError(f"the data check failed, nothing was trained: {first}{more}")
        tasks = sorted({t.task for t in cfg.data.train_tasks} | self._test_tasks()
                       | (set(cfg.data.builtin.tasks) if cfg.data.builtin.enabled else set()),
                       key=list(DEGRADATIONS).index)
        self.bank = PromptBank(build_encoder(cfg.prompts, self.ctx.device), tasks,
                               cfg.prompts.style)
        # each task's embedding on the device once: a batch's prompts are stacked there, not
        # copied from the host at every step
        self._prompt_rows = {n: self.bank(n, self.ctx.device)[0] for n in self.bank.names}
        self.test_sets = build_test_datasets(cfg.data)
        first_stage = Progress(**state["progress"]).stage if state is not None else 0
        self._train_sets = {i: self._check_stage(i) for i in
                            range(first_stage, len(cfg.train.stages))}
        self.input_scores: dict[tuple[str, int], tuple[float, float]] = {}
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self.classifier_state: dict | None = None  # the degradation classifier (ours), once trained

        # every check passed: from here on the run directory is written
        if self.ctx.is_main:
            if overwrite:  # set aside until the first checkpoint, put back if none comes
                self._aside = bool(set_aside_owned_files(self.run_dir))
            remove_stale_temporaries(self.run_dir)
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
            if not resume:
                save_config(cfg, self.run_dir / "config.yaml")
            elif changes:
                path = record_changes(self.run_dir, changes, state["progress"]["global_step"],
                                      resume_with_changes)
                logger.warning("resumed with config changes (recorded in %s): %s", path,
                               ", ".join(changes))
        if state is not None:
            self._resume(state)

    def _test_tasks(self) -> set[str]:
        return {t.task for t in self.cfg.data.test_sets}

    def _check_stage(self, index: int):
        """The training set of stage ``index``, checked to give at least one full batch: every
        stage is checked before the first starts."""
        stage = self.cfg.train.stages[index]
        dataset = self._train_set(stage)
        if stage.epochs and self._iters_per_epoch(len(dataset), stage) == 0:
            raise ConfigError(
                f"train.stages[{index}] ({stage.name!r}): {len(dataset)} training samples give "
                f"no full batch of {self._batch(stage)} per process (of {self.ctx.world_size}); "
                "lower its batch_size or add data")
        return dataset

    def _train_set(self, stage: StageConfig):
        return build_train_dataset(dataclasses.replace(self.cfg.data, patch_size=stage.patch_size))

    def _batch(self, stage: StageConfig) -> int:
        return process_batch_size(stage.batch_size, self.ctx.world_size,
                                  self.cfg.train.batch_size_is_global)

    def _iters_per_epoch(self, dataset_size: int, stage: StageConfig) -> int:
        per_rank = math.ceil(dataset_size / self.ctx.world_size)
        return per_rank // self._batch(stage)

    def _resume(self, state: dict) -> None:
        self.progress = Progress(**state["progress"])
        self._latest_step = self.progress.global_step
        self._pending = state  # optimizer and scheduler are rebuilt when their stage starts
        set_rng_state(state["rng"])
        self.classifier_state = state.get("classifier")
        self._saved_world = int(state.get("world_size", self.ctx.world_size))
        if self._saved_world != self.ctx.world_size:
            self._resume_on_world(self._saved_world)
        logger.info("resumed %s at stage %d epoch %d iteration %d", self.run_dir,
                    self.progress.stage, self.progress.epoch, self.progress.iteration)

    def _resume_on_world(self, old_world: int) -> None:
        """Continue the epoch at the image where ``old_world`` processes left it."""
        p, t = self.progress, self.cfg.train
        if p.stage < len(t.stages):
            stage = t.stages[p.stage]
            old_batch = process_batch_size(stage.batch_size, old_world, t.batch_size_is_global)
            change = resume_on_world(p.iteration, old_world, self.ctx.world_size, old_batch,
                                     self._batch(stage))
            p.iteration = change.iteration
            if self.ctx.is_main:
                for message in change.messages:
                    logger.warning("%s", message)
