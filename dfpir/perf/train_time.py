"""Device-report section 3: timed end-to-end ``Trainer`` runs on a generated data root (data wait,
samples/s), plus the memory checks of ``train_memory`` and the recipes' projections."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..config import ExperimentConfig, load_config
from ..data import fill_cache, training_image_paths
from .kernel_count import count_kernels
from .measure import (
    Budget,
    OutOfMemory,
    _catch_oom,
    _free,
    _peak_mib,
    _reset_peak,
    _sync,
    row_text,
)
from .settings import ReportSettings
from .train_data import (
    REAL_IMAGE_SIZES,
    recipe_projection,
    write_data_root,
)
from .train_memory import (
    compile_recompilation,
    largest_batch,
    stage_memory,
)

logger = logging.getLogger(__name__)


class _EnoughIterations(Exception):  # noqa: N818 (control flow, not an error)
    """Raised by the timed trainer after its last timed step: ends ``Trainer.run`` at once,
    without the stop-request path (which saves ``latest.pt`` and may raise its own error)."""


def _timed_trainer_class():
    from ..train.trainer import Trainer

    class TimedTrainer(Trainer):
        """A Trainer that records when each batch arrives and when its step ends (waiting for
        the device: the trainer itself no longer syncs every step), and stops after ``limit``
        iterations or ``seconds`` after its ``warmup`` iterations (the first steps of a GPU
        run load kernels for seconds, and must not eat the timed budget). It relies only on
        ``_run_epoch`` (called per epoch) and ``_train_batch`` (called per batch)."""

        limit = 0
        warmup = 0
        seconds = math.inf
        deadline = math.inf

        def _run_epoch(self, *args, **kwargs):
            self.marks: list[tuple[float, float]] = getattr(self, "marks", [])
            self._last_end = time.perf_counter()
            return super()._run_epoch(*args, **kwargs)

        def _train_batch(self, *args, **kwargs):
            if len(self.marks) == max(1, self.warmup) and not hasattr(self, "kernels"):
                # one step after the warm-up, profiled (not timed): its kernel launches
                result: list[int] = []
                self.kernels = count_kernels(lambda: result.append(super(
                    TimedTrainer, self)._train_batch(*args, **kwargs)), self.ctx.device)
                self._last_end = time.perf_counter()
                return result[0]
            arrived = time.perf_counter()
            done = super()._train_batch(*args, **kwargs)
            _sync(self.ctx.device)
            end = time.perf_counter()
            self.marks.append((arrived - self._last_end, end - arrived))
            self._last_end = end
            if len(self.marks) == max(1, self.warmup):
                self.deadline = end + self.seconds
            if len(self.marks) >= self.limit or end > self.deadline:
                raise _EnoughIterations()
            return done

    return TimedTrainer


def _train_config(base: ExperimentConfig, root: Path, batch: int, patch: int, iters: int,
                  cache_dir: str, bf16: bool, channels_last: bool, device: str, workers: int,
                  model: dict, compile_mode: str = "none") -> ExperimentConfig:
    cfg = copy.deepcopy(base)
    # the generated root holds none of the released file lists' names: use its folders
    tasks = [dataclasses.replace(t, list_file="", list_missing="scan")
             for t in cfg.data.train_tasks]
    data = dataclasses.replace(cfg.data, data_root=str(root), test_sets=[], cache_dir=cache_dir,
                               num_workers=workers, patch_size=patch, train_tasks=tasks)
    stage = dataclasses.replace(cfg.train.stages[0], batch_size=batch, max_iters=iters + 5,
                                patch_size=patch)
    train = dataclasses.replace(cfg.train, stages=[stage], bf16=bf16, channels_last=channels_last,
                                compile=compile_mode, device=device, val_every=0, save_every_epochs=0,
                                save_every_iters=0, log_every=10**9)
    prompts = dataclasses.replace(cfg.prompts, encoder="hashed")
    model_cfg = dataclasses.replace(cfg.model, **model) if model else cfg.model
    return dataclasses.replace(cfg, data=data, train=train, prompts=prompts, model=model_cfg)


def training(settings: ReportSettings, device: torch.device, config_path: str | Path,
             work_dir: Path, out: dict | None = None, flush: Callable[[], None] = lambda: None
             ) -> dict:
    """Timed Trainer runs on a generated data root, each stage's memory, recompilation under
    ``torch.compile`` and the recipes' projected wall time. Fills ``out`` (returned) and calls
    ``flush`` after each measurement, so a run cut short keeps what it measured."""
    budget = Budget(settings.train_budget_s)
    base = load_config(config_path)
    root = work_dir / "data"
    start = time.perf_counter()
    write_data_root(root, settings.train_images, settings.image_scale)
    out = {} if out is None else out
    out.update({"data_root_s": round(time.perf_counter() - start, 1),
                 "images_per_family": settings.train_images,
                 "image_sizes": {k: f"{round(w * settings.image_scale)}x"
                                    f"{round(h * settings.image_scale)} {fmt.upper()}"
                                 for k, (h, w, fmt) in REAL_IMAGE_SIZES.items()},
                 "runs": []})
    bf16_default = device.type == "cuda"
    max_batch, notes = largest_batch(settings, device, bf16_default, budget)
    _free(device)  # the search's model and optimizer are gone now
    out["largest_batch"] = max_batch
    out["largest_batch_notes"] = notes
    # (batch, decode cache, bf16, channels_last, train.compile): eager first, then the compiled
    # modes at the recipe's batch (each pays its compile inside the run's first steps)
    runs = [(5, False, base.train.bf16, False, "none"), (5, True, base.train.bf16, False, "none")]
    runs += [(5, True, True, False, mode) for mode in settings.train_compile_modes]
    runs += [(5, True, True, True, "none"), (max_batch, True, True, True, "none")]
    default = (5, bool(base.data.cache_dir), base.train.bf16, base.train.channels_last, "none")
    cache_dir = work_dir / "cache"
    for batch, cache, bf16, channels_last, compile_mode in runs:
        row = {"batch": batch, "cache": cache, "bf16": bf16, "channels_last": channels_last,
               "compile": compile_mode,
               "recipe_default": (batch, cache, bf16, channels_last, compile_mode) == default}
        if compile_mode != "none" and device.type != "cuda" and settings.quick:
            out["runs"].append({**row, "skipped": "torch.compile takes minutes on a CPU"})
            continue
        if not budget.ok(5 if compile_mode == "none" else 60):
            out["runs"].append({**row, "skipped": "section time budget spent"})
            continue
        cfg = _train_config(base, root, batch, settings.size, settings.train_iters,
                            str(cache_dir) if cache else "", bf16, channels_last, str(device),
                            settings.num_workers, settings.model, compile_mode)
        if cache:
            fill_cache(training_image_paths(cfg.data), cache_dir)
        row.update(_timed_run(cfg, work_dir / f"run_b{batch}_c{int(cache)}_bf{int(bf16)}",
                              settings, budget, device))
        out["runs"].append(row)
        logger.info("training: %s", row_text(row))
        flush()
    out["stage_memory"] = stage_memory(settings, device, base, budget)
    flush()
    out["compile"] = compile_recompilation(settings, device, base, budget)
    flush()
    measured = [r for r in out["runs"] if r.get("it_s") and r["batch"] == 5]
    fastest = {}
    for r in measured:  # per precision and compile mode: the fastest measured at batch 5
        key = ("bf16" if r["bf16"] else "fp32") + (
            f" + compile {r['compile']}" if r.get("compile", "none") != "none" else "")
        fastest[key] = max(fastest.get(key, 0.0), r["it_s"])
    out["projections"] = {}
    for key, it_s in fastest.items():
        per_sample = {settings.size: 1.0 / (it_s * 5)}
        out["projections"][key] = [
            recipe_projection(load_config(Path(config_path).parent / name), per_sample)
            for name in ("three_task.yaml", "five_task.yaml")
        ]
    return out


def _timed_run(cfg: ExperimentConfig, run_dir: Path, settings: ReportSettings, budget: Budget,
               device: torch.device) -> dict:
    trainer_cls = _timed_trainer_class()
    _reset_peak(device)
    try:
        with _catch_oom(device):
            trainer = trainer_cls(cfg, run_dir, overwrite=True)
            trainer.limit = settings.train_iters + settings.train_warmup
            trainer.warmup = settings.train_warmup
            trainer.seconds = min(settings.train_run_budget_s, max(budget.left(), 1.0))
            trainer.save = lambda *names: None  # checkpoints are not what is measured
            trainer.run()
    except _EnoughIterations:
        pass
    except OutOfMemory as err:
        return {"oom": str(err)[:160]}
    finally:
        _free(device)
    marks = getattr(trainer, "marks", [])
    steady = marks[settings.train_warmup:] if len(marks) > settings.train_warmup else marks
    wait = sum(m[0] for m in steady)
    total = wait + sum(m[1] for m in steady)
    return {"iterations": len(marks), "timed_iterations": len(steady),
            "first_step_s": round(marks[0][1], 1) if marks else None,
            "it_s": len(steady) / total if total else None,
            "samples_s": len(steady) * cfg.train.stages[0].batch_size / total if total else None,
            "data_wait_fraction": wait / total if total else None,
            "kernels_per_step": getattr(trainer, "kernels", None),
            "peak_mib": _peak_mib(device)}

