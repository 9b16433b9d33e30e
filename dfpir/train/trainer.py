"""The training loop: stages, epochs, steps, as the recipe reads. ``Trainer`` composes parts
that each own their state and get what they need passed in: the step (``TrainStep``), the
window of steps checked for non-finite values (``LossWindow``), each stage's optimiser and
schedule (``StageSchedule``), the checkpoints (``Checkpointer``), the validations
(``Validator``), the stop requests (``StopRequests``) and the TensorBoard log
(``MetricsLog``); ``run_setup`` holds the checks and builders of the start."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import yaml
from torch.utils.data import DataLoader

from ..config import ConfigError, ExperimentConfig, StageConfig, config_to_dict
from ..data import build_test_datasets, loader_workers, seed_worker
from ..device import is_out_of_memory, keep_freed_memory
from ..errors import TrainingError
from ..models.precision import set_backend_precision
from .checkpoint_io import export_weights, set_rng_state
from .checkpointer import Checkpointer, training_state
from .distributed import DistContext, peer_failure
from .errors import NonFiniteLossError, RunDirError
from .loss_window import LossWindow, StepInfo, WindowResult
from .metrics_log import MetricsLog
from .progress import StageProgress
from .run_setup import (
    build_model,
    build_prompts,
    check_data_first,
    no_checkpoint_message,
    open_run_dir,
    resolve_config,
    setup_for,
    stored_config,
)
from .rundir import RunLock
from .sampler import EpochSampler
from .schedule import StageSchedule
from .stages import Progress, StageSizes, resume_position
from .stop_requests import StopNow, StopRequests, give_up_waiting
from .text_log import TextLog
from .train_step import TrainStep
from .validator import Validator
from .world_resume import continue_on_world

__all__ = ["StopNow", "Trainer"]

logger = logging.getLogger(__name__)


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
        self.lock = RunLock(self.run_dir)
        self.log = MetricsLog()
        self.text = TextLog()
        self.checkpoints = Checkpointer(self.run_dir)
        if resume and overwrite:
            raise RunDirError("--resume and --overwrite exclude each other")
        if resume and not self.checkpoints.latest.is_file():
            raise RunDirError(no_checkpoint_message(self.run_dir))
        if cfg is None and not resume:
            raise ConfigError("a new run needs a config (--config)")
        self.ctx = ctx or setup_for(cfg or stored_config(self.run_dir))
        self.stops = StopRequests(self.ctx.distributed, announce=self.ctx.is_main)
        self.progress = Progress()
        self.schedule: StageSchedule | None = None
        self._bar: StageProgress | None = None
        if self.ctx.is_main:
            self.lock.acquire()  # before anything is written
        try:
            self._start(cfg, resume, overwrite, resume_with_changes)
        except BaseException:
            self.close()
            raise

    def _start(self, cfg: ExperimentConfig | None, resume: bool, overwrite: bool,
               resume_with_changes: bool) -> None:
        """Every check, then the run directory's first writes, then the resumed state."""
        ctx = self.ctx
        cfg, state, changes = resolve_config(cfg, self.run_dir, ctx.is_main, resume, overwrite,
                                             resume_with_changes)
        self.cfg = cfg
        self.stops.stall_s = cfg.train.dist_stop_wait_s
        self.stops.on_stall = lambda signum, waited: give_up_waiting(
            signum, waited, ctx.rank, self.checkpoints.latest, self.checkpoints.latest_step,
            self.run_dir, self.close)
        set_backend_precision(cfg.train.tf32, cfg.train.cudnn_benchmark)
        if ctx.device.type == "cpu" and cfg.train.keep_freed_memory:
            keep_freed_memory()  # ~25% faster CPU steps: no page faults on every activation
        self.model, self.net = build_model(cfg, ctx, state, str(self.checkpoints.latest))
        check_data_first(cfg)
        self.bank, prompt_rows = build_prompts(cfg, ctx.device)
        self.step = TrainStep(self.model, self.net, cfg.train, prompt_rows, ctx.device)
        self.window = LossWindow(list(prompt_rows), ctx.device)  # per-task losses of these
        self.sizes = StageSizes(cfg.train, cfg.data, ctx.world_size)
        first_stage = Progress(**state["progress"]).stage if state is not None else 0
        self._train_sets = {i: self.sizes.train_set(i)
                            for i in range(first_stage, len(cfg.train.stages))}
        self._work = {i: self._stage_work(i, len(d)) for i, d in self._train_sets.items()}
        self.test_sets = build_test_datasets(cfg.data)
        self.validator = Validator(self.model, self.test_sets, self.bank, ctx, cfg,
                                   self.run_dir, self.log, self.text, self.stops)
        self.classifier_state: dict | None = None  # the degradation classifier (ours)
        self._resumed: dict | None = None  # the optimiser state of a stage resumed mid-way
        self._saved_world = ctx.world_size
        # every check passed: from here on the run directory is written
        if ctx.is_main:
            resumed_step = state["progress"]["global_step"] if state is not None else None
            self.checkpoints.set_aside = open_run_dir(self.run_dir, cfg, overwrite, changes,
                                                      resumed_step, resume_with_changes)
            self.log.open(self.run_dir / "tensorboard")
            self.log.text("config", "    " + yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
                          .replace("\n", "\n    "))
            self.text.open(self.run_dir, resumed_step)
        if state is not None:
            self._resume(state)

    def _resume(self, state: dict) -> None:
        self.progress = Progress(**state["progress"])
        self.checkpoints.latest_step = self.progress.global_step
        self._resumed = state  # optimizer and scheduler are rebuilt when their stage starts
        set_rng_state(state["rng"])
        self.classifier_state = state.get("classifier")
        self._saved_world = int(state.get("world_size", self.ctx.world_size))
        if self._saved_world != self.ctx.world_size and self.progress.stage < len(
                self.cfg.train.stages):  # the epoch goes on at the image the old world left
            messages = continue_on_world(self.progress, self.cfg.train, self._saved_world,
                                         self.sizes)
            for message in messages if self.ctx.is_main else ():
                logger.warning("%s", message)
        logger.info("resumed %s %s", self.run_dir,
                    resume_position(self.progress, self.cfg.train.stages))

    def close(self) -> None:
        """Flush TensorBoard, put an old run back after a failed ``--overwrite`` and release
        the run directory's lock (idempotent)."""
        self.log.close()
        self.text.close()
        self.checkpoints.close()
        self.lock.release()

    # ------------------------------------------------------------------ the recipe

    def run(self) -> dict[str, dict[str, float]]:
        """Train every remaining stage; returns the final validation metrics. A stop request
        (SIGINT, SIGTERM) saves ``latest.pt`` and raises ``TrainingInterrupted``."""
        stages = self.cfg.train.stages
        try:
            with self.stops.handling_signals():
                for index in range(self.progress.stage, len(stages)):
                    self.progress.stage = index
                    if not self._run_stage(stages[index], index):
                        raise self._interrupted()
                    self.progress.stage, self.progress.epoch, self.progress.iteration = (
                        index + 1, 0, 0)
                    self.save("latest", f"stage{index + 1}_{stages[index].name}")
                if self.cfg.classifier.enabled and self.classifier_state is None:
                    self._train_classifier()
                results = self.validator.validate(self.progress, self.save, final=True,
                                                  classifier_state=self.classifier_state)
                if self.stops.stopping:
                    raise self._interrupted()
            if self.ctx.is_main:
                export_weights(self.model, self.run_dir / "export")
            return results
        finally:
            self.close()

    def _run_stage(self, stage: StageConfig, index: int) -> bool:
        """The stage's epochs; ``False`` when a stop request ended it (``latest.pt`` saved)."""
        p = self.progress
        if stage.epochs == 0:
            return True
        dataset = self._train_sets.pop(index, None)
        if dataset is None:
            dataset = self.sizes.train_set(index)
        iters_per_epoch = self.sizes.iters_per_epoch(len(dataset), stage)
        stage_iters = self.sizes.stage_iters(stage, iters_per_epoch)
        if self.ctx.is_main:
            logger.info("%s", self.sizes.describe(stage))
        self.schedule = StageSchedule(self.model, stage, self.cfg.train, iters_per_epoch,
                                      stage_iters)
        self.step.use(self.schedule.optimizer)
        done = p.epoch * iters_per_epoch + p.iteration
        mid_stage = p.epoch > 0 or p.iteration > 0
        resumed, self._resumed = self._resumed, None
        if resumed is not None and resumed["optimizer"] is not None and mid_stage:
            self.schedule.load(resumed, index, done, self._saved_world != self.ctx.world_size)
        stages = self.cfg.train.stages
        self._bar = StageProgress(stage_iters, done, f"stage {index + 1}/{len(stages)} "
                                  f"{stage.name}", enabled=self.ctx.is_main,
                                  every_s=self.cfg.train.progress_every_s, log=self.text.line,
                                  later=lambda per_it: per_it * sum(
                                      w for i, w in self._work.items() if i > index)
                                  / self._work[index])
        try:
            while p.epoch < stage.epochs and done < stage_iters:
                done = self._run_epoch(stage, dataset, iters_per_epoch, stage_iters)
                if self.stops.stopping:
                    self.save("latest")
                    if self.ctx.is_main:  # the rank that saved
                        logger.warning("interrupted: saved %s", self.checkpoints.latest)
                    return False
        finally:
            self._bar.close()
        return True

    def _run_epoch(self, stage: StageConfig, dataset, iters_per_epoch: int, stage_iters: int
                   ) -> int:
        """The epoch's batches from where the run is; returns the stage's iterations done."""
        p, ctx = self.progress, self.ctx
        epoch_key = p.stage * 100_000 + p.epoch
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.cfg.seed, epoch_key)
        batch_size = self.sizes.batch(stage)
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
                done = self._train_batch(batch, stage, iters_per_epoch, stage_iters, start)
                if self.stops.stopping or done >= stage_iters or p.iteration >= iters_per_epoch:
                    break
        except RuntimeError as err:
            # Ctrl-C also stops the loader's workers; a rank that is gone is no such stop
            if not self.stops.requested or peer_failure(err, ctx):
                raise
        if self.stops.stopping or p.iteration < iters_per_epoch:
            return p.epoch * iters_per_epoch + p.iteration
        return self._end_epoch(stage, iters_per_epoch)

    def _train_batch(self, batch, stage: StageConfig, iters_per_epoch: int, stage_iters: int,
                     start: float) -> int:
        """One step; every ``log_every`` steps (and before a save, a selection or the epoch's
        end, the same steps on every rank) the window of steps is checked and logged."""
        t, p = self.cfg.train, self.progress
        degraded, clean, tasks = batch
        try:
            with self.stops.step():
                self._step(degraded, clean, list(tasks))
        except RuntimeError as err:
            if not is_out_of_memory(err):
                raise
            raise TrainingError(self._oom_message(stage, err)) from None
        p.iteration += 1
        p.global_step += 1
        done = p.epoch * iters_per_epoch + p.iteration
        save = t.save_every_iters and p.global_step % t.save_every_iters == 0
        select = (t.select_on_test and t.select_every_iters and p.iteration < iters_per_epoch
                  and p.iteration % t.select_every_iters == 0)  # the epoch's end: as an epoch
        if (p.global_step % t.log_every == 0 or save or select or p.iteration >= iters_per_epoch
                or done >= stage_iters or (self.stops.requested and not self.ctx.distributed)):
            self._log(self._check_window(), start)
        self._bar.update(1)  # after the check: a line for this step shows its loss and lr
        self.schedule.after_iteration()
        if save:
            self.save("latest")
        if select:
            self.validator.select_on_test(p, t.select_tolerance_iters, "iterations", self.save)
            self.net.train()
        return done

    def _step(self, degraded, clean, tasks: list[str]):
        """The step on one batch, its loss and gradient norm added to the window unread."""
        p = self.progress
        loss, norm, items = self.step(degraded, clean, tasks)
        self.window.add(loss, norm, StepInfo(p.stage + 1, p.epoch + 1, p.iteration + 1,
                                             p.global_step + 1, tasks), items)
        return loss

    def _end_epoch(self, stage: StageConfig, iters_per_epoch: int) -> int:
        t, p = self.cfg.train, self.progress
        p.epoch += 1
        p.iteration = 0
        self.schedule.after_epoch()
        last_of_run = p.epoch >= stage.epochs and p.stage == len(t.stages) - 1
        if (t.val_every and p.epoch % t.val_every == 0) or (p.epoch >= stage.epochs
                                                             and not last_of_run):
            self.validator.validate(p, self.save)  # the run's last epoch: the final one
        if t.select_on_test and t.select_every_epochs and p.epoch % t.select_every_epochs == 0:
            self.validator.select_on_test(p, t.select_tolerance_epochs, "epoch", self.save)
        names = ["latest"]
        if t.save_every_epochs and p.epoch % t.save_every_epochs == 0:
            names.append(f"stage{p.stage + 1}_epoch{p.epoch:04d}")
        self.save(*names)
        return p.epoch * iters_per_epoch

    # ------------------------------------------------------------------ checks and logs

    def _check_window(self) -> WindowResult:
        """Read the steps since the last check (one sync, one all-reduce under torchrun):
        non-finite losses or gradients stop the run before any checkpoint holds their weights;
        a stop request of any rank becomes every rank's."""
        with self.stops.step():
            result = self.window.check(self.ctx, self.stops.requested, self.stops.signal)
        if self.ctx.distributed:
            self.stops.agree(result.stop, result.stop_signal)
        if result.bad is not None:
            raise NonFiniteLossError(f"{result.problem()}. "
                                     f"{self.checkpoints.last_good(self.progress.stage)}")
        return result

    def _log(self, result: WindowResult, start: float) -> None:
        """The last checked step's loss on the progress bar and, every ``log_every`` steps,
        in TensorBoard."""
        p, loss = self.progress, result.last_loss
        if loss is None:
            return
        lr, t = self.schedule.lr, self.cfg.train
        what = "minus PSNR, dB" if t.loss == "psnr" else t.loss
        self._bar.set_postfix(loss=f"{loss:.4f} ({what})", lr=f"{lr:.2e}",
                              epoch=f"{p.epoch + 1}/{t.stages[p.stage].epochs}")
        if p.global_step % self.cfg.train.log_every == 0:
            self.log.scalar("train/loss", loss, p.global_step)
            self.log.scalar("train/lr", lr, p.global_step)
            self.log.scalar("train/grad_norm", result.norms[-1], p.global_step)
            for task, value in result.task_losses.items():
                self.log.scalar(f"train/loss_{task}", value, p.global_step)
            self.log.scalar("train/iters_per_s", p.iteration / (time.perf_counter() - start),
                            p.global_step)

    def _oom_message(self, stage: StageConfig, err: BaseException) -> str:
        p = self.progress
        return (f"out of memory on {self.ctx.device} at stage {p.stage + 1} ({stage.name!r}) "
                f"global step {p.global_step + 1}, batch {self.sizes.batch(stage)} of "
                f"{stage.patch_size}x{stage.patch_size} crops per process "
                f"({str(err).splitlines()[0][:200]}). Lower train.stages[{p.stage}].batch_size "
                f"or patch_size, or set train.bf16: true; then "
                f"{self.checkpoints.go_on(' --resume-with-changes')}")

    def _stage_work(self, index: int, dataset_size: int) -> float:
        """Stage ``index``'s work in pixels per process (its iterations x batch x crop
        area), to scale the run's ETA from the speed of the stage under way."""
        stage = self.cfg.train.stages[index]
        iters = self.sizes.stage_iters(stage, self.sizes.iters_per_epoch(dataset_size, stage))
        return max(iters * self.sizes.batch(stage) * stage.patch_size ** 2, 1)

    def _interrupted(self):
        return self.stops.interrupted(self.checkpoints.latest, self.progress.global_step,
                                      self.run_dir)

    # ------------------------------------------------------------------ checkpoints

    def save(self, *names: str) -> None:
        """Write the current state as ``checkpoints/<name>.pt`` for each name (rank 0 only).
        Non-finite weights are never written: ``NonFiniteLossError`` instead."""
        if len(self.window) and not self.ctx.distributed:
            self._check_window()  # under torchrun every save follows a check of all ranks
        if not self.ctx.is_main:
            return
        state = training_state(self.model, self.schedule, self.progress, self.ctx.world_size,
                               self.cfg, self.bank, self.classifier_state)
        self.checkpoints.save(names, state, self.step.loss_on_last_batch(),
                              self.progress.global_step, self.progress.stage)

    def _train_classifier(self) -> None:
        """Train the degradation classifier (``classifier:`` section; ours, off by default) on
        the training mix and add it to the last stage's checkpoint, 'latest' and 'best'. A stop
        asked meanwhile ends it and the run (``--resume`` trains it again); under torchrun the
        ranks waiting for rank 0 agree on that stop when it is done."""
        if self.ctx.is_main:
            from ..blind.classifier import ClassifierStopped, train_classifier
            try:
                self.classifier_state = train_classifier(
                    self.cfg, lambda: self.stops.requested).to_state()
            except ClassifierStopped:  # asked to stop: the run ends below, on every rank
                pass
            else:
                stages = self.cfg.train.stages
                self.save("latest", f"stage{len(stages)}_{stages[-1].name}")
                self.checkpoints.add_to_best("classifier", self.classifier_state)
        self.ctx.barrier()
        if self.ctx.distributed:
            self.stops.agree(*self.ctx.any_stop(self.stops.requested, self.stops.signal))
        if self.stops.stopping:
            raise self._interrupted()
