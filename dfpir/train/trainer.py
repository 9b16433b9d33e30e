"""The training loop: stages, epochs, validation, logging, checkpoints and resume. ``Trainer``
puts together the set-up (``setting_up``), the optimiser and schedule (``scheduling``), the
step (``stepping``), the checkpoint policy (``checkpoint_policy``) and the validations
(``validating``); the stage and epoch loop and the stop requests are here."""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

from torch.utils.data import DataLoader

from ..config import ConfigError, ExperimentConfig, StageConfig
from ..data import loader_workers, seed_worker
from .checkpoint_policy import TrainerCheckpoints
from .checkpointing import atomic_save, export_weights, load_training_state
from .distributed import DistContext, peer_failure, setup, teardown
from .errors import PeerFailedError, RunDirError, TrainingInterrupted
from .progress import StageProgress
from .rundir import RunLock, restore_set_aside
from .sampler import EpochSampler
from .scheduling import TrainerScheduling
from .setting_up import (  # process_batch_size: re-exported
    Progress,
    TrainerSetup,
    _no_checkpoint_message,
    process_batch_size,  # noqa: F401
    stored_config,
)
from .step_window import StepWindow
from .stepping import TrainerStepping
from .validating import (  # release_selects: re-exported
    TrainerValidation,
    _AbortValidation,
    release_selects,  # noqa: F401
)
from .world_resume import restart_schedule_at

logger = logging.getLogger(__name__)


class StopNow(KeyboardInterrupt):  # noqa: N818 (like KeyboardInterrupt)
    """A second SIGINT/SIGTERM: stop at once. A ``KeyboardInterrupt`` so that no ``except
    Exception`` holds it up; the atomic writes keep every checkpoint whole."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"second {signal.Signals(signum).name}: stopped at once")
        self.signum = signum
        self.exit_code = 128 + signum


class Trainer(TrainerSetup, TrainerScheduling, TrainerStepping, TrainerCheckpoints,
              TrainerValidation):
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
        self._stop_agreed = False  # under torchrun: the stop request of the last check
        self.window = StepWindow()
        self._bar: StageProgress | None = None
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
        self.ctx = ctx or setup_for(cfg or stored_config(self.run_dir))
        if self.ctx.is_main:
            self.lock.acquire()  # before anything is written
        try:
            self._setup(cfg, resume, overwrite, resume_with_changes)
        except BaseException:
            self.close()
            raise

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

    def _log_batch(self, stage: StageConfig) -> None:
        """Say what one optimiser step averages over: the lr is never scaled with processes."""
        batch, world = self._batch(stage), self.ctx.world_size
        message = (f"stage {stage.name!r}: {world} process(es) x batch {batch} = effective "
                   f"global batch {batch * world}, lr {stage.lr:g} (not scaled with the number "
                   f"of processes); batch_size {stage.batch_size} is "
                   f"{'global' if self.cfg.train.batch_size_is_global else 'per process'}")
        if self.ctx.is_main:
            logger.info(message)

    # ------------------------------------------------------------------ the loop

    def _stopping(self) -> bool:
        """The stop request every rank acts on: the local one, or under torchrun the one all
        ranks agreed on at the last check (a signal may reach the ranks at different steps)."""
        return self._stop_agreed if self.ctx.distributed else self.stop_requested

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
            if self._stopping():
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
        stage_iters = self._stage_iters(stage, iters_per_epoch)
        done = p.epoch * iters_per_epoch + p.iteration
        if pending is not None and pending["optimizer"] is not None and mid_stage:
            self.optimizer.load_state_dict(pending["optimizer"])
            if self._world_changed() and self.cfg.train.scheduler_step == "iteration":
                # the iterations now count other batches: this world's schedule at ``done``
                restart_schedule_at(self.scheduler, self.optimizer, done)
            else:
                self.scheduler.load_state_dict(pending["scheduler"])
            self._apply_changed_hyperparameters(stage, pending)
        self._pending = None
        self._bar = StageProgress(stage_iters, done, stage.name, enabled=self.ctx.is_main,
                                  every_s=self.cfg.train.progress_every_s)
        try:
            while p.epoch < stage.epochs and done < stage_iters:
                done = self._run_epoch(stage, dataset, iters_per_epoch, stage_iters)
                if self._stopping():
                    self.save("latest")
                    logger.warning("interrupted: saved %s", self.ckpt_dir / "latest.pt")
                    return False
        finally:
            self._bar.close()
        return True

    def _world_changed(self) -> bool:
        return getattr(self, "_saved_world", self.ctx.world_size) != self.ctx.world_size

    def _run_epoch(self, stage: StageConfig, dataset, iters_per_epoch: int, stage_iters: int
                   ) -> int:
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
                done = self._train_batch(batch, stage, iters_per_epoch, stage_iters, start)
                if self._stopping() or done >= stage_iters or p.iteration >= iters_per_epoch:
                    break
        except RuntimeError:
            if not self.stop_requested:  # Ctrl-C also stops the loader's workers
                raise
        if self._stopping() or p.iteration < iters_per_epoch:
            return p.epoch * iters_per_epoch + p.iteration
        return self._end_epoch(stage, iters_per_epoch)

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
                            best, self._go_on())
        self.ctx.barrier()


def setup_for(cfg: ExperimentConfig) -> DistContext:
    """The process group (or single process) of ``cfg.train``: device and timeouts."""
    t = cfg.train
    return setup(t.device, t.dist_timeout_s, t.dist_wait_timeout_s)


def train(cfg: ExperimentConfig | None, run_dir: str | Path, resume: bool = False,
          overwrite: bool = False, resume_with_changes: bool = False
          ) -> dict[str, dict[str, float]]:
    """Set up (one process or a ``torchrun`` group), train, tear down. ``cfg`` may be ``None``
    with ``resume``: the run's stored config is used."""
    if cfg is None and resume:
        cfg = stored_config(run_dir)
    if cfg is None:
        raise ConfigError("a new run needs a config (--config)")
    ctx = setup_for(cfg)
    try:
        results = Trainer(cfg, run_dir, resume, overwrite, ctx, resume_with_changes).run()
    except RuntimeError as err:
        # no teardown after a failure: destroying a broken group can block; exiting closes it
        if peer_failure(err, ctx):
            raise PeerFailedError(
                f"rank {ctx.rank} stops: another process of the torchrun group failed (its "
                f"error is printed by that process) or did not answer within "
                f"train.dist_timeout_s ({str(err).splitlines()[0][:160]})") from None
        raise
    teardown(ctx)
    return results
