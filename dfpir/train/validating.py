"""The validations of a training run: periodic, the release's selection on the test sets and
the final one, each shared by the ranks of a torchrun group (every rank scores a slice of every
set; the sums are added up on the long-timeout group, so a slow slice trips no timeout)."""

from __future__ import annotations

import json
import logging

from .distributed import all_reduce_sum, broadcast_object
from .validation import validate, write_comparison_figure, write_results_table

logger = logging.getLogger(__name__)


class _AbortValidation(KeyboardInterrupt):  # noqa: N818 (internal control flow)
    """A first SIGINT/SIGTERM during a validation: skip it, save, stop."""


def release_selects(mean_psnr: float, best_psnr: float, tolerance: float) -> bool:
    """The release's rule for saving a checkpoint scored on the test sets: the mean PSNR is
    above the best so far minus ``tolerance`` (so near-ties with the best are kept too)."""
    return mean_psnr > best_psnr - tolerance


class TrainerValidation:
    """The validation methods of ``Trainer`` (which provides the model, test sets, bank,
    context, progress, writer, ``save`` and ``_stopping``)."""

    def select_on_test(self, tolerance: float, trigger: str) -> bool:
        """The release's checkpoint selection: score every image of every test set, save
        ``checkpoints/test_selected.pt`` when ``release_selects`` says so, and append the scores
        to ``test_selection.jsonl``. Every rank scores its share of the images. Returns whether
        it saved (rank 0; others return False)."""
        if not self.test_sets:
            return False
        p = self.progress
        results, _ = self._validate_shared(0, 0)
        mean_psnr = sum(m["psnr"] for m in results.values()) / len(results)
        saved = release_selects(mean_psnr, p.test_best_psnr, tolerance)
        p.test_best_psnr = max(p.test_best_psnr, mean_psnr)
        if not self.ctx.is_main:
            self.ctx.barrier()
            return False
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

    def _validate_shared(self, limit: int, samples: int, classifier=None):
        """``validation.validate`` with each rank scoring a slice of every set and the sums
        added up on the long-timeout group: however long one rank's slice takes, the others
        wait for it without tripping the training collectives' timeout."""
        ctx = self.ctx
        return validate(self.model, self.test_sets, self.bank, ctx.device, limit, samples,
                        self.cfg.eval, self.input_scores, classifier,
                        shard=(ctx.rank, ctx.world_size),
                        reduce=lambda sums: all_reduce_sum(sums, ctx, wait=True))

    def validate(self, final: bool = False) -> dict[str, dict[str, float]]:
        """Metrics on the configured test sets (every rank scores a share), logged and used
        for 'best' on rank 0. A signal during it skips it (returns ``{}``) in a single
        process; under torchrun the shared validation runs to its end."""
        if not self.test_sets or self._stopping():
            return {}
        limit = 0 if final else self.cfg.train.val_max_images
        classifier = None
        state = broadcast_object(self.classifier_state, self.ctx) if final else None
        if state:
            from ..blind import DegradationClassifier

            classifier = DegradationClassifier.from_state(state)
        self._validating = not self.ctx.distributed
        try:
            results, samples = self._validate_shared(limit, self.cfg.train.sample_images,
                                                     classifier)
        except _AbortValidation:
            logger.warning("validation skipped")
            return {}
        finally:
            self._validating = False
        mean_psnr = sum(m["psnr"] for m in results.values()) / len(results)
        # 'best' compares like with like: the final (all-image) validation only counts when the
        # periodic ones also used every image
        comparable = not final or limit == self.cfg.train.val_max_images
        best = comparable and mean_psnr > self.progress.best_psnr
        if best:
            self.progress.best_psnr = mean_psnr
        if not self.ctx.is_main:
            self.ctx.barrier()
            return results
        step = self.progress.global_step
        for name, metrics in results.items():
            for key, value in metrics.items():
                self.writer.add_scalar(f"val/{name}/{key}", value, step)
        for name, image in samples.items():
            self.writer.add_image(f"samples/{name}", image, step)
        if classifier is not None:
            for key in ("accuracy", "blind_psnr"):
                value = sum(m[key] for m in results.values()) / len(results)
                self.writer.add_scalar(f"val/classifier_{key}", value, step)
        self.writer.add_scalar("val/mean_psnr", mean_psnr, step)
        if best:
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
