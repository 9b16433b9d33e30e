"""The training loop: stages, epochs, validation, logging, checkpoints and resume."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import sys
import threading
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..allocator import keep_freed_memory
from ..config import (
    ConfigError,
    ExperimentConfig,
    StageConfig,
    apply_override,
    build_dataclass,
    config_to_dict,
    save_config,
)
from ..data import (
    DataError,
    build_test_datasets,
    build_train_dataset,
    check_data,
    loader_workers,
    seed_worker,
)
from ..models import DFPIR
from ..models.checkpoint import check_state_dict, non_finite_keys
from ..prompts import DEGRADATIONS, PromptBank, build_encoder
from .checkpointing import (
    atomic_save,
    export_weights,
    load_training_state,
    rng_state,
    set_rng_state,
)
from .distributed import DistContext, all_reduce_mean, any_rank, setup, teardown
from .errors import NonFiniteLossError, RunDirError, TrainingInterrupted
from .losses import compute_loss, training_loss
from .rundir import (
    RunLock,
    config_changes,
    drop_set_aside,
    record_changes,
    refuse_changes,
    remove_stale_temporaries,
    restore_set_aside,
    set_aside_owned_files,
)
from .sampler import EpochSampler
from .validation import validate, write_comparison_figure, write_results_table

logger = logging.getLogger(__name__)


class _AbortValidation(KeyboardInterrupt):  # noqa: N818 (internal control flow)
    """A first SIGINT/SIGTERM during a validation: skip it, save, stop."""


class StopNow(KeyboardInterrupt):  # noqa: N818 (like KeyboardInterrupt)
    """A second SIGINT/SIGTERM: stop at once. A ``KeyboardInterrupt`` so that no ``except
    Exception`` holds it up; the atomic writes keep every checkpoint whole."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"second {signal.Signals(signum).name}: stopped at once")
        self.signum = signum
        self.exit_code = 128 + signum


@dataclasses.dataclass
class Progress:
    """Where a run is: stage, epoch within the stage, iteration within the epoch."""

    stage: int = 0
    epoch: int = 0
    iteration: int = 0
    global_step: int = 0
    best_psnr: float = -math.inf
    test_best_psnr: float = -math.inf  # best mean test PSNR of train.select_on_test


def release_selects(mean_psnr: float, best_psnr: float, tolerance: float) -> bool:
    """The release's rule for saving a checkpoint scored on the test sets: the mean PSNR is
    above the best so far minus ``tolerance`` (so near-ties with the best are kept too)."""
    return mean_psnr > best_psnr - tolerance


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


class Trainer:
    """Trains a DFPIR as an ``ExperimentConfig`` says, writing everything under ``run_dir``.

    The run directory is locked for the trainer's life (``close`` releases it, ``run`` calls
    it); nothing is written there before every check has passed (config values, run directory,
    resumed checkpoint and config, data). ``resume`` continues ``checkpoints/latest.pt`` with
    the run's stored config: ``cfg`` may differ from it only in ``rundir.RESUMABLE_KEYS``
    unless ``resume_with_changes``; changes are recorded in ``config_changes.yaml``.
    """

    def __init__(self, cfg: ExperimentConfig | None, run_dir: str | Path, resume: bool = False,
                 overwrite: bool = False, ctx: DistContext | None = None,
                 resume_with_changes: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.progress = Progress()
        self.stop_requested = False
        self.stop_signal: int | None = None
        self._validating = False
        self._latest_step: int | None = None  # global step of the latest.pt on disk
        self.writer = None
        self.lock = RunLock(self.run_dir)
        if resume and overwrite:
            raise RunDirError("--resume and --overwrite exclude each other")
        if resume and not (self.ckpt_dir / "latest.pt").is_file():
            raise RunDirError(_no_checkpoint_message(self.run_dir))
        if cfg is None and not resume:
            raise ConfigError("a new run needs a config (--config)")
        self.ctx = ctx or setup((cfg or stored_config(self.run_dir)).train.device)
        if self.ctx.is_main:
            self.lock.acquire()  # before anything is written
        try:
            self._setup(cfg, resume, overwrite, resume_with_changes)
        except BaseException:
            self.close()
            raise

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
            first = "" if latest.is_file() else (
                " (stopped before its first checkpoint, so --resume cannot continue it)")
            raise RunDirError(
                f"{self.run_dir} already holds a run{first}; pass --resume to continue it or "
                "--overwrite to start again there"
            )
        self.cfg = cfg
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

    def close(self) -> None:
        """Flush TensorBoard and release the run directory's lock (idempotent)."""
        if self.writer:
            self.writer.close()
            self.writer = None
        if getattr(self, "_aside", False):  # --overwrite, and no checkpoint was written
            for path in restore_set_aside(self.run_dir):
                logger.warning("--overwrite: the new run wrote no checkpoint; put back %s", path)
            self._aside = False
        self.lock.release()

    # ------------------------------------------------------------------ setup helpers

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

    def _train_set(self, stage: StageConfig):
        return build_train_dataset(dataclasses.replace(self.cfg.data, patch_size=stage.patch_size))

    def _batch(self, stage: StageConfig) -> int:
        return process_batch_size(stage.batch_size, self.ctx.world_size,
                                  self.cfg.train.batch_size_is_global)

    def _iters_per_epoch(self, dataset_size: int, stage: StageConfig) -> int:
        per_rank = math.ceil(dataset_size / self.ctx.world_size)
        return per_rank // self._batch(stage)

    def _log_batch(self, stage: StageConfig) -> None:
        """Say what one optimiser step averages over: the lr is never scaled with processes."""
        batch, world = self._batch(stage), self.ctx.world_size
        message = (f"stage {stage.name!r}: {world} process(es) x batch {batch} = effective "
                   f"global batch {batch * world}, lr {stage.lr:g} (not scaled with the number "
                   f"of processes); batch_size {stage.batch_size} is "
                   f"{'global' if self.cfg.train.batch_size_is_global else 'per process'}")
        if self.ctx.is_main:
            logger.info(message)

    # ------------------------------------------------------------------ checkpoints

    def _state(self) -> dict:
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": None,  # bf16 autocast needs no loss scaling
            "progress": dataclasses.asdict(self.progress),
            "rng": rng_state(),
            "config": config_to_dict(self.cfg),
            **({"classifier": self.classifier_state} if self.classifier_state else {}),
        }

    def save(self, *names: str) -> None:
        """Write the current state as ``checkpoints/<name>.pt`` for each name (rank 0 only).
        Non-finite weights are never written: ``NonFiniteLossError`` instead."""
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
            atomic_save(state, self.ckpt_dir / f"{name}.pt")
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
            return float(compute_loss(t.loss, restored.float(), clean))
        finally:
            self.model.train(was_training)

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

    def _resume(self, state: dict) -> None:
        self.progress = Progress(**state["progress"])
        self._latest_step = self.progress.global_step
        self._pending = state  # optimizer and scheduler are rebuilt when their stage starts
        set_rng_state(state["rng"])
        self.classifier_state = state.get("classifier")
        logger.info("resumed %s at stage %d epoch %d iteration %d", self.run_dir,
                    self.progress.stage, self.progress.epoch, self.progress.iteration)

    # ------------------------------------------------------------------ the loop

    def _on_signal(self, signum: int, _frame) -> None:
        """SIGINT/SIGTERM: stop at the next step boundary after saving ``latest.pt``; a
        validation under way is skipped; a second signal stops at once."""
        if self.stop_signal is not None:
            raise StopNow(signum)
        self.stop_requested = True
        self.stop_signal = signum
        logger.warning("%s: saving latest.pt at the next step boundary, then stopping (send "
                       "it again to stop at once)", signal.Signals(signum).name)
        if self._validating:
            raise _AbortValidation()

    def _stopped(self) -> TrainingInterrupted:
        latest = self.ckpt_dir / "latest.pt"
        by = signal.Signals(self.stop_signal).name if self.stop_signal else "a stop request"
        return TrainingInterrupted(
            f"stopped by {by}: {latest} holds global step {self.progress.global_step}; "
            f"continue with --resume --run-dir {self.run_dir}", self.stop_signal)

    def run(self) -> dict[str, dict[str, float]]:
        """Train every remaining stage; returns the final validation metrics. A stop request
        (SIGINT, SIGTERM) saves ``latest.pt`` and raises ``TrainingInterrupted``."""
        handle = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)
                    } if handle else {}
        try:
            for index in range(self.progress.stage, len(self.cfg.train.stages)):
                self.progress.stage = index
                if not self._run_stage(self.cfg.train.stages[index], index):
                    raise self._stopped()
                self.progress.stage, self.progress.epoch, self.progress.iteration = index + 1, 0, 0
                self.save("latest", f"stage{index + 1}_{self.cfg.train.stages[index].name}")
            if self.cfg.classifier.enabled and self.classifier_state is None:
                self._train_classifier()
            results = self.validate(final=True)
            if self.stop_requested:
                raise self._stopped()
            if self.ctx.is_main:
                export_weights(self.model, self.run_dir / "export")
            return results
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()

    def _run_stage(self, stage: StageConfig, index: int) -> bool:
        p = self.progress
        if stage.epochs == 0:
            return True
        dataset = self._train_sets.pop(index, None)
        if dataset is None:
            dataset = self._check_stage(index)
        iters_per_epoch = self._iters_per_epoch(len(dataset), stage)
        self._log_batch(stage)
        self._make_optimizer(stage, iters_per_epoch)
        pending = getattr(self, "_pending", None)
        mid_stage = p.epoch > 0 or p.iteration > 0
        if pending is not None and pending["optimizer"] is not None and mid_stage:
            self.optimizer.load_state_dict(pending["optimizer"])
            self.scheduler.load_state_dict(pending["scheduler"])
            self._apply_changed_hyperparameters(stage, pending)
        self._pending = None
        stage_iters = self._stage_iters(stage, iters_per_epoch)
        done = p.epoch * iters_per_epoch + p.iteration
        bar = tqdm(total=stage_iters, initial=done, desc=f"{stage.name}", unit="it",
                   disable=not self.ctx.is_main, dynamic_ncols=True,
                   mininterval=0.1 if sys.stderr.isatty() else 5.0)  # quiet logs off a tty
        try:
            while p.epoch < stage.epochs and done < stage_iters:
                done = self._run_epoch(stage, dataset, iters_per_epoch, stage_iters, bar)
                if self.stop_requested:
                    self.save("latest")
                    logger.warning("interrupted: saved %s", self.ckpt_dir / "latest.pt")
                    return False
        finally:
            bar.close()
        return True

    def _run_epoch(self, stage: StageConfig, dataset, iters_per_epoch: int, stage_iters: int,
                   bar: tqdm) -> int:
        p, ctx = self.progress, self.ctx
        epoch_key = p.stage * 100_000 + p.epoch
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.cfg.seed, epoch_key)
        batch_size = self._batch(stage)
        sampler = EpochSampler(len(dataset), self.cfg.seed, epoch_key, ctx.rank, ctx.world_size,
                               start=p.iteration * batch_size)
        loader = DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, drop_last=True,
            num_workers=loader_workers(self.cfg.data.num_workers), worker_init_fn=seed_worker,
            pin_memory=ctx.device.type == "cuda", persistent_workers=False,
        )
        self.net.train()
        start = time.perf_counter()
        try:
            for batch in loader:
                done = self._train_batch(batch, stage, iters_per_epoch, start, bar)
                self.stop_requested = any_rank(self.stop_requested, self.ctx)
                if self.stop_requested or done >= stage_iters or p.iteration >= iters_per_epoch:
                    break
        except RuntimeError:
            if not self.stop_requested:  # Ctrl-C also stops the loader's workers
                raise
        if self.stop_requested or p.iteration < iters_per_epoch:
            return p.epoch * iters_per_epoch + p.iteration
        return self._end_epoch(stage, iters_per_epoch)

    def _train_batch(self, batch, stage: StageConfig, iters_per_epoch: int, start: float,
                     bar: tqdm) -> int:
        t, p = self.cfg.train, self.progress
        degraded, clean, tasks = batch
        loss = self._step(degraded, clean, list(tasks))
        p.iteration += 1
        p.global_step += 1
        done = p.epoch * iters_per_epoch + p.iteration
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}",
                        epoch=p.epoch + 1)
        if self.writer and p.global_step % t.log_every == 0:
            self.writer.add_scalar("train/loss", loss, p.global_step)
            self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"],
                                   p.global_step)
            self.writer.add_scalar("train/iters_per_s", p.iteration /
                                   (time.perf_counter() - start), p.global_step)
        if t.scheduler_step == "iteration":
            self.scheduler.step()
        if t.save_every_iters and p.global_step % t.save_every_iters == 0:
            self.save("latest")
        if (t.select_on_test and t.select_every_iters and p.iteration % t.select_every_iters == 0
                and p.iteration < iters_per_epoch):  # the epoch's end scores it as an epoch
            self.select_on_test(t.select_tolerance_iters, "iterations")
            self.net.train()
        return done

    def _end_epoch(self, stage: StageConfig, iters_per_epoch: int) -> int:
        t, p = self.cfg.train, self.progress
        p.epoch += 1
        p.iteration = 0
        if t.scheduler_step == "epoch":
            self.scheduler.step()
        last_of_run = p.epoch >= stage.epochs and p.stage == len(t.stages) - 1
        if (t.val_every and p.epoch % t.val_every == 0) or (p.epoch >= stage.epochs
                                                             and not last_of_run):
            self.validate()  # the last epoch of the run gets the full final validation
        if t.select_on_test and t.select_every_epochs and p.epoch % t.select_every_epochs == 0:
            self.select_on_test(t.select_tolerance_epochs, "epoch")
        names = ["latest"]
        if t.save_every_epochs and p.epoch % t.save_every_epochs == 0:
            names.append(f"stage{p.stage + 1}_epoch{p.epoch:04d}")
        self.save(*names)
        return p.epoch * iters_per_epoch

    def _step(self, degraded: torch.Tensor, clean: torch.Tensor, tasks: list[str]) -> float:
        t, device = self.cfg.train, self.ctx.device
        fmt = torch.channels_last if t.channels_last else torch.contiguous_format
        degraded = degraded.to(device, non_blocking=True).contiguous(memory_format=fmt)
        clean = clean.to(device, non_blocking=True)
        prompts = self.bank(tasks, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=t.bf16):
            restored = self.net(degraded, prompts)
        loss = training_loss(t.loss, t.loss_weighting, restored.float(), clean, degraded)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite loss {loss.item()} at stage {self.progress.stage + 1} epoch "
                f"{self.progress.epoch + 1} iteration {self.progress.iteration + 1} (global step "
                f"{self.progress.global_step + 1}), batch tasks {sorted(set(tasks))}. "
                f"{self._last_good()}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [q.grad for q in self.model.parameters() if q.grad is not None]
        if t.grad_clip:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm(grads)
        if not torch.isfinite(norm):  # never step (nor save) on a non-finite gradient
            raise NonFiniteLossError(
                f"non-finite gradient norm {norm.item()} at stage {self.progress.stage + 1} "
                f"global step {self.progress.global_step + 1} (loss {loss.item():.4g}); the "
                f"weights were not updated. {self._last_good()}")
        self.optimizer.step()
        self._last_batch = (degraded, clean, tasks)
        return float(all_reduce_mean(loss.detach(), self.ctx))

    def _train_classifier(self) -> None:
        """Train the degradation classifier (``classifier:`` section; ours, off by default) on
        the training mix and add it to the last stage's checkpoint, 'latest' and 'best'."""
        if self.ctx.is_main:
            from ..blind import train_classifier

            self.classifier_state = train_classifier(self.cfg).to_state()
            stages = self.cfg.train.stages
            self.save("latest", f"stage{len(stages)}_{stages[-1].name}")
            best = self.ckpt_dir / "best.pt"
            if best.is_file():  # an earlier validation's best weights get it too
                atomic_save({**load_training_state(best), "classifier": self.classifier_state},
                            best)
        self.ctx.barrier()

    # ------------------------------------------------------------------ validation

    def select_on_test(self, tolerance: float, trigger: str) -> bool:
        """The release's checkpoint selection: score every image of every test set, save
        ``checkpoints/test_selected.pt`` when ``release_selects`` says so, and append the scores
        to ``test_selection.jsonl``. Returns whether it saved (rank 0; others return False)."""
        if not self.ctx.is_main or not self.test_sets:
            self.ctx.barrier()
            return False
        p = self.progress
        results, _ = validate(self.model, self.test_sets, self.bank, self.ctx.device, 0, 0,
                              self.cfg.eval, self.input_scores)
        mean_psnr = sum(m["psnr"] for m in results.values()) / len(results)
        saved = release_selects(mean_psnr, p.test_best_psnr, tolerance)
        p.test_best_psnr = max(p.test_best_psnr, mean_psnr)
        if saved:
            self.save("test_selected")
        record = {"stage": p.stage + 1, "epoch": p.epoch, "iteration": p.iteration,
                  "global_step": p.global_step, "trigger": trigger, "tolerance": tolerance,
                  "mean_psnr": mean_psnr, "best_psnr": p.test_best_psnr, "saved": saved,
                  "sets": {name: {"psnr": m["psnr"], "ssim": m["ssim"]}
                           for name, m in results.items()}}
        with open(self.run_dir / "test_selection.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        self.writer.add_scalar("test/mean_psnr", mean_psnr, p.global_step)
        self.ctx.barrier()
        return saved

    def validate(self, final: bool = False) -> dict[str, dict[str, float]]:
        """Metrics on the configured test sets (rank 0), logged and used for 'best'. A signal
        during it skips it (returns ``{}``)."""
        if not self.ctx.is_main or not self.test_sets or self.stop_requested:
            self.ctx.barrier()
            return {}
        limit = 0 if final else self.cfg.train.val_max_images
        classifier = None
        if final and self.classifier_state:
            from ..blind import DegradationClassifier

            classifier = DegradationClassifier.from_state(self.classifier_state)
        self._validating = True
        try:
            results, samples = validate(self.model, self.test_sets, self.bank, self.ctx.device,
                                        limit, self.cfg.train.sample_images, self.cfg.eval,
                                        self.input_scores, classifier)
        except _AbortValidation:
            logger.warning("validation skipped")
            self.ctx.barrier()
            return {}
        finally:
            self._validating = False
        step = self.progress.global_step
        for name, metrics in results.items():
            for key, value in metrics.items():
                self.writer.add_scalar(f"val/{name}/{key}", value, step)
        for name, image in samples.items():
            self.writer.add_image(f"samples/{name}", image, step)
        mean_psnr = sum(m["psnr"] for m in results.values()) / len(results)
        if classifier is not None:
            for key in ("accuracy", "blind_psnr"):
                value = sum(m[key] for m in results.values()) / len(results)
                self.writer.add_scalar(f"val/classifier_{key}", value, step)
        self.writer.add_scalar("val/mean_psnr", mean_psnr, step)
        # 'best' compares like with like: the final (all-image) validation only counts when the
        # periodic ones also used every image
        comparable = not final or limit == self.cfg.train.val_max_images
        if comparable and mean_psnr > self.progress.best_psnr:
            self.progress.best_psnr = mean_psnr
            self.save("best")
        if final:
            table = write_results_table(results, self.run_dir / "final_results.md")
            self._validating = True
            try:
                write_comparison_figure(self.model, self.test_sets, self.bank, self.ctx.device,
                                        self.run_dir / "comparison.png")
            except _AbortValidation:
                logger.warning("comparison figure skipped")
            finally:
                self._validating = False
            print("\n" + table, flush=True)
        self.ctx.barrier()
        return results


def train(cfg: ExperimentConfig | None, run_dir: str | Path, resume: bool = False,
          overwrite: bool = False, resume_with_changes: bool = False
          ) -> dict[str, dict[str, float]]:
    """Set up (one process or a ``torchrun`` group), train, tear down. ``cfg`` may be ``None``
    with ``resume``: the run's stored config is used."""
    if cfg is None and resume:
        cfg = stored_config(run_dir)
    if cfg is None:
        raise ConfigError("a new run needs a config (--config)")
    ctx = setup(cfg.train.device)
    try:
        return Trainer(cfg, run_dir, resume, overwrite, ctx, resume_with_changes).run()
    finally:
        teardown(ctx)
