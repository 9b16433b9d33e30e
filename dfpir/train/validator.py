"""The validations of a training run: periodic, the release's selection on the test sets and
the final one, each shared by the ranks of a torchrun group (every rank scores a slice of every
set; the sums are added up on the long-timeout group, so a slow slice trips no timeout)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from ..config import ExperimentConfig
from ..models.compiling import eager
from ..prompts import PromptBank
from .distributed import DistContext, all_reduce_sum, broadcast_object
from .metrics_log import MetricsLog
from .scoring import format_results_table, validate, write_comparison_figure, write_results_table
from .stages import Progress
from .stop_requests import AbortValidation, StopRequests
from .text_log import TextLog

logger = logging.getLogger(__name__)

Save = Callable[..., None]  # the trainer's save(*names)


def release_selects(mean_psnr: float, best_psnr: float, tolerance: float) -> bool:
    """The release's rule for saving a checkpoint scored on the test sets: the mean PSNR is
    above the best so far minus ``tolerance`` (so near-ties with the best are kept too)."""
    return mean_psnr > best_psnr - tolerance


class Validator:
    """Scores ``model`` on ``test_sets`` during training and logs it (rank 0). The inputs'
    scores are kept across validations (the test inputs are fixed)."""

    def __init__(self, model: torch.nn.Module, test_sets: dict, bank: PromptBank,
                 ctx: DistContext, cfg: ExperimentConfig, run_dir: Path, log: MetricsLog,
                 text: TextLog, stops: StopRequests) -> None:
        self.model, self.test_sets, self.bank, self.ctx = model, test_sets, bank, ctx
        self.cfg, self.run_dir, self.log, self.stops = cfg, run_dir, log, stops
        self.text = text
        self.input_scores: dict[tuple[str, int], tuple[float, float]] = {}

    def _shared(self, limit: int, samples: int, classifier=None):
        """``scoring.validate`` with each rank scoring a slice of every set and the sums added
        up on the long-timeout group: however long one rank's slice takes, the others wait for
        it without tripping the training collectives' timeout."""
        ctx = self.ctx
        with eager():  # every image's own shape: never a recompile
            return validate(self.model, self.test_sets, self.bank, ctx.device, limit, samples,
                            self.cfg.eval, self.input_scores, classifier,
                            shard=(ctx.rank, ctx.world_size),
                            reduce=lambda sums: all_reduce_sum(sums, ctx, wait=True))

    def select_on_test(self, progress: Progress, tolerance: float, trigger: str,
                       save: Save) -> bool:
        """The release's checkpoint selection: score every image of every test set, save
        ``checkpoints/test_selected.pt`` when ``release_selects`` says so, and append the scores
        to ``test_selection.jsonl``. Returns whether it saved (rank 0; others False)."""
        if not self.test_sets:
            return False
        p = progress
        results, _ = self._shared(0, 0)
        mean_psnr = sum(m["psnr"] for m in results.values()) / len(results)
        saved = release_selects(mean_psnr, p.test_best_psnr, tolerance)
        p.test_best_psnr = max(p.test_best_psnr, mean_psnr)
        if not self.ctx.is_main:
            self.ctx.barrier()
            return False
        if saved:
            save("test_selected")
        record = {"stage": p.stage + 1, "epoch": p.epoch, "iteration": p.iteration,
                  "global_step": p.global_step, "trigger": trigger, "tolerance": tolerance,
                  "mean_psnr": mean_psnr, "best_psnr": p.test_best_psnr, "saved": saved,
                  "sets": {name: {"psnr": m["psnr"], "ssim": m["ssim"]}
                           for name, m in results.items()}}
        with open(self.run_dir / "test_selection.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        self.log.scalar("test/mean_psnr", mean_psnr, p.global_step)
        self.ctx.barrier()
        return saved

    def validate(self, progress: Progress, save: Save, final: bool = False,
                 classifier_state: dict | None = None) -> dict[str, dict[str, float]]:
        """Metrics on the test sets (every rank scores a share), logged and used for 'best' on
        rank 0. A signal during it skips it (returns ``{}``) in a single process; under
        torchrun the shared validation runs to its end. ``final``: every image, the
        classifier's blind scores, ``final_results.md`` and ``comparison.png``."""
        if not self.test_sets or self.stops.stopping:
            return {}
        limit = 0 if final else self.cfg.train.val_max_images
        classifier = None
        state = broadcast_object(classifier_state, self.ctx) if final else None
        if state:
            from ..blind import DegradationClassifier

            classifier = DegradationClassifier.from_state(state)
        try:
            with self.stops.abortable_work():
                results, samples = self._shared(limit, self.cfg.train.sample_images,
                                                classifier)
        except AbortValidation:
            logger.warning("validation skipped")
            return {}
        mean_psnr = sum(m["psnr"] for m in results.values()) / len(results)
        # 'best' compares like with like: the final (all-image) validation only counts when the
        # periodic ones also used every image
        comparable = not final or limit == self.cfg.train.val_max_images
        best = comparable and mean_psnr > progress.best_psnr
        if best:
            progress.best_psnr = mean_psnr
        if not self.ctx.is_main:
            self.ctx.barrier()
            return results
        step = progress.global_step
        for name, metrics in results.items():
            for key, value in metrics.items():
                self.log.scalar(f"val/{name}/{key}", value, step)
        for name, image in samples.items():
            self.log.image(f"samples/{name}", image, step)
        if classifier is not None:
            for key in ("accuracy", "blind_psnr"):
                value = sum(m[key] for m in results.values()) / len(results)
                self.log.scalar(f"val/classifier_{key}", value, step)
        self.log.scalar("val/mean_psnr", mean_psnr, step)
        if not final:  # on the console and in train.log; the final one prints its own table
            logger.info("validation at global step %d (stage %d, epoch %d)%s:\n%s", step,
                        progress.stage + 1, progress.epoch, " (new best)" if best else "",
                        format_results_table(results).rstrip())
        if best:
            save("best")
        if final:
            table = write_results_table(results, self.run_dir / "final_results.md")
            try:
                with self.stops.abortable_work(shared=False), eager():  # rank 0's own
                    write_comparison_figure(self.model, self.test_sets, self.bank,
                                            self.ctx.device, self.run_dir / "comparison.png")
            except AbortValidation:
                logger.warning("comparison figure skipped")
            print("\n" + table, flush=True)
            self.text.line("final validation:\n" + table)
        self.ctx.barrier()
        return results
