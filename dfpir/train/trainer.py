"""The training loop: stages, epochs, validation, logging, checkpoints and resume."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..allocator import keep_freed_memory
from ..config import ConfigError, ExperimentConfig, StageConfig, config_to_dict, save_config
from ..data import (
    DataError,
    build_test_datasets,
    build_train_dataset,
    check_data,
    loader_workers,
    seed_worker,
)
from ..errors import DfpirError, TrainingError
from ..models import DFPIR
from ..prompts import DEGRADATIONS, PromptBank, build_encoder
from .checkpointing import (
    atomic_save,
    export_weights,
    load_training_state,
    rng_state,
    set_rng_state,
)
from .distributed import DistContext, all_reduce_mean, setup, teardown
from .losses import training_loss
from .sampler import EpochSampler
from .validation import validate, write_comparison_figure, write_results_table

logger = logging.getLogger(__name__)


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


class RunDirError(DfpirError, RuntimeError):
    """The run directory already holds a run and neither resume nor overwrite was asked for."""


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


class Trainer:
    """Trains a DFPIR as an ``ExperimentConfig`` says, writing everything under ``run_dir``."""

    def __init__(self, cfg: ExperimentConfig, run_dir: str | Path, resume: bool = False,
                 overwrite: bool = False, ctx: DistContext | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.ctx = ctx or setup(cfg.train.device)
        self.progress = Progress()
        self._check_run_dir(resume, overwrite)
        self.stop_requested = False

        if self.ctx.device.type == "cpu" and cfg.train.keep_freed_memory:
            keep_freed_memory()  # ~25% faster CPU steps: no page faults on every activation
        torch.manual_seed(cfg.seed)  # same initial weights on every rank
        self.model = DFPIR(cfg.model).to(self.ctx.device)
        torch.manual_seed(cfg.seed + self.ctx.rank)  # per-rank streams from here on
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
        self.input_scores: dict[tuple[str, int], tuple[float, float]] = {}
        self.writer = None
        self._make_run_dir(overwrite)
        if self.ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))
            save_config(cfg, self.run_dir / "config.yaml")
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self.classifier_state: dict | None = None  # the degradation classifier (ours), once trained
        if resume:
            self._resume()

    # ------------------------------------------------------------------ setup helpers

    def _test_tasks(self) -> set[str]:
        return {t.task for t in self.cfg.data.test_sets}

    def _check_run_dir(self, resume: bool, overwrite: bool) -> None:
        latest = self.ckpt_dir / "latest.pt"
        if resume:
            if not latest.is_file():
                raise RunDirError(f"--resume: no checkpoint at {latest}")
            return
        if (self.run_dir / "config.yaml").exists() and not overwrite:
            raise RunDirError(
                f"{self.run_dir} already holds a run; pass --resume to continue it or "
                "--overwrite to start again there"
            )

    def _make_run_dir(self, overwrite: bool) -> None:
        """Create the run directory: only once the config, device, data and prompts have all
        been checked, so a bad command leaves nothing on disk."""
        latest = self.ckpt_dir / "latest.pt"
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if overwrite and latest.exists():
                latest.unlink()

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
        """Write the current state as ``checkpoints/<name>.pt`` for each name (rank 0 only)."""
        if not self.ctx.is_main:
            return
        state = self._state()
        for name in names:
            atomic_save(state, self.ckpt_dir / f"{name}.pt")

    def _resume(self) -> None:
        state = load_training_state(self.ckpt_dir / "latest.pt")
        self.model.load_state_dict(state["model"])
        self.progress = Progress(**state["progress"])
        self._pending = state  # optimizer and scheduler are rebuilt when their stage starts
        set_rng_state(state["rng"])
        self.classifier_state = state.get("classifier")
        logger.info("resumed %s at stage %d epoch %d iteration %d", self.run_dir,
                    self.progress.stage, self.progress.epoch, self.progress.iteration)

    # ------------------------------------------------------------------ the loop

    def _request_stop(self, *_) -> None:
        self.stop_requested = True

    def run(self) -> dict[str, dict[str, float]]:
        """Train every remaining stage; returns the final validation metrics."""
        previous = signal.signal(signal.SIGINT, self._request_stop)
        try:
            for index in range(self.progress.stage, len(self.cfg.train.stages)):
                self.progress.stage = index
                if not self._run_stage(self.cfg.train.stages[index]):
                    return {}
                self.progress.stage, self.progress.epoch, self.progress.iteration = index + 1, 0, 0
                self.save("latest", f"stage{index + 1}_{self.cfg.train.stages[index].name}")
            if self.cfg.classifier.enabled and self.classifier_state is None:
                self._train_classifier()
            results = self.validate(final=True)
            if self.ctx.is_main:
                export_weights(self.model, self.run_dir / "export")
            return results
        finally:
            signal.signal(signal.SIGINT, previous)
            if self.writer:
                self.writer.close()

    def _run_stage(self, stage: StageConfig) -> bool:
        p = self.progress
        dataset = self._train_set(stage)
        iters_per_epoch = self._iters_per_epoch(len(dataset), stage)
        if iters_per_epoch == 0:
            raise TrainingError(f"stage {stage.name!r}: {len(dataset)} training samples give no "
                                f"full batch of {self._batch(stage)} per process")
        self._log_batch(stage)
        self._make_optimizer(stage, iters_per_epoch)
        pending = getattr(self, "_pending", None)
        mid_stage = p.epoch > 0 or p.iteration > 0
        if pending is not None and pending["optimizer"] is not None and mid_stage:
            self.optimizer.load_state_dict(pending["optimizer"])
            self.scheduler.load_state_dict(pending["scheduler"])
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
                f"{self.progress.global_step + 1}), batch tasks {sorted(set(tasks))}; the last "
                f"good checkpoint is kept in {self.ckpt_dir}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.optimizer.step()
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
        """Metrics on the configured test sets (rank 0), logged and used for 'best'."""
        if not self.ctx.is_main or not self.test_sets:
            self.ctx.barrier()
            return {}
        limit = 0 if final else self.cfg.train.val_max_images
        classifier = None
        if final and self.classifier_state:
            from ..blind import DegradationClassifier

            classifier = DegradationClassifier.from_state(self.classifier_state)
        results, samples = validate(self.model, self.test_sets, self.bank, self.ctx.device,
                                    limit, self.cfg.train.sample_images, self.cfg.eval,
                                    self.input_scores, classifier)
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
            write_comparison_figure(self.model, self.test_sets, self.bank, self.ctx.device,
                                    self.run_dir / "comparison.png")
            print("\n" + table, flush=True)
        self.ctx.barrier()
        return results


def train(cfg: ExperimentConfig, run_dir: str | Path, resume: bool = False,
          overwrite: bool = False) -> dict[str, dict[str, float]]:
    """Set up (one process or a ``torchrun`` group), train, tear down."""
    ctx = setup(cfg.train.device)
    try:
        return Trainer(cfg, run_dir, resume, overwrite, ctx).run()
    finally:
        teardown(ctx)
