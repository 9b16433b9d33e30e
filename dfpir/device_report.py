"""One-command device report: model throughput, end-to-end training and inference on this machine.

``run_report`` measures, within a time budget per section:

1. **Model throughput** of DFPIR and the Restormer baseline at 128x128, batch 8 and 32:
   forward and forward+backward images/s, achieved TFLOP/s (CUDA) and peak memory for fp32, bf16
   autocast, bf16 + channels_last and bf16 + ``torch.compile`` (compile time reported apart).
2. **End-to-end training** with ``dfpir.train.Trainer``: the five-task recipe, full model, on a
   generated data root with the real sets' image sizes and formats, at batch 5 (the paper) and
   the largest batch that fits, decode cache off and on: iterations/s, the fraction of the time
   spent waiting for the next batch, and the projected wall time of the paper's three- and
   five-task recipes (the released file lists' image counts, the configs' repeats and stages).
3. **Inference** on a 1280x720 and a 4000x3000 image, whole and tiled, fp32 and bf16: seconds,
   peak memory, and the PSNR of the bf16 output against the fp32 one.

It writes ``device_report.md`` (ready for the README's Speed section) and ``device_report.json``.
``quick=True`` shrinks everything (tiny model, small images, a few iterations) so the whole
report runs on a CPU in seconds; its numbers mean nothing, it proves the code path works.
Out-of-memory errors are caught and reported per row, never fatal.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import importlib
import json
import logging
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .benchmark import BenchResult, benchmark
from .config import ExperimentConfig, load_config
from .data import fill_cache, training_image_paths, write_image
from .inference import autocast_context, resolve_device, restore
from .models import DFPIR, DFPIRConfig

logger = logging.getLogger(__name__)

#: Training images in the released file lists (``data_dir/*`` of the DFPIR release):
#: BSD400 + WED (denoise), Rain100L train (derain), RESIDE OTS (dehaze), GoPro, LOL.
RELEASE_TRAIN_IMAGES: dict[str, int] = {
    "denoise": 5144, "derain": 200, "dehaze": 72135, "deblur": 2103, "lowlight": 485,
}

#: (height, width, format) of generated training images per family, as the real sets.
REAL_IMAGE_SIZES: dict[str, tuple[int, int, str]] = {
    "denoise": (321, 481, "png"),  # BSD400 / WED ~481x321
    "dehaze": (413, 550, "jpg"),  # RESIDE OTS ~550x413, JPEG
    "derain": (321, 481, "png"),  # Rain100L 481x321
    "deblur": (720, 1280, "png"),  # GoPro 1280x720
    "lowlight": (400, 600, "png"),  # LOL 600x400
}

#: The report's sections, in the order they run (the cheap, decisive checks first).
SECTIONS = ("precision", "throughput", "training", "inference")

#: The throughput modes: (name, bf16, channels_last, compile).
MODES: list[tuple[str, bool, bool, bool]] = [
    ("fp32", False, False, False),
    ("bf16", True, False, False),
    ("bf16+channels_last", True, True, False),
    ("bf16+compile", True, False, True),
]


class OutOfMemory(RuntimeError):
    """A measurement ran out of device memory."""


@dataclass
class ReportSettings:
    """What the report measures and how long each section may take (seconds)."""

    device: str = "auto"
    quick: bool = False
    model: dict = field(default_factory=dict)  # DFPIRConfig overrides (quick: a tiny model)
    size: int = 128
    batches: list[int] = field(default_factory=lambda: [8, 32])
    modes: list[str] = field(default_factory=lambda: [m[0] for m in MODES])
    bench_iters: int = 5
    bench_warmup: int = 2
    bench_budget_s: float = 180.0
    train_iters: int = 300
    train_warmup: int = 20  # iterations left out of the rate (workers starting, autotuning)
    train_run_budget_s: float = 40.0  # per training run
    train_budget_s: float = 150.0
    train_images: int = 12  # generated pairs per family
    image_scale: float = 1.0  # generated image sizes relative to the real sets
    num_workers: int = 8
    infer_sizes: list[tuple[int, int]] = field(default_factory=lambda: [(720, 1280),
                                                                        (3000, 4000)])
    tile: int = 512
    infer_budget_s: float = 70.0
    max_batch_cap: int = 512
    threads: int = 0  # torch CPU threads during the report (0: leave as is)

    def scale_budgets(self, factor: float) -> None:
        """Multiply every section's time budget by ``factor``."""
        for name in ("bench_budget_s", "train_run_budget_s", "train_budget_s", "infer_budget_s"):
            setattr(self, name, getattr(self, name) * factor)

    @classmethod
    def for_quick(cls, device: str = "cpu") -> ReportSettings:
        """Tiny everything: runs on a CPU in seconds. The budgets are only a safety net here
        (a busy machine must not turn the smoke test's rows into skips)."""
        return cls(
            device=device, quick=True,
            model={"dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1,
                   "heads": [1, 1, 2, 2]},
            size=32, batches=[2], modes=[m[0] for m in MODES],
            bench_iters=1, bench_warmup=1, bench_budget_s=300.0, train_iters=3, train_warmup=1,
            train_run_budget_s=300.0, train_budget_s=300.0, train_images=2, image_scale=0.15,
            num_workers=0, infer_sizes=[(40, 64), (48, 80)], tile=32, infer_budget_s=300.0,
            max_batch_cap=4, threads=1,
        )


# ---------------------------------------------------------------------------- helpers


class Budget:
    """Seconds left for one section; ``ok(estimate)`` says whether another step fits."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)

    def ok(self, estimate: float = 0.0) -> bool:
        return self.left() > estimate


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


@contextlib.contextmanager
def _catch_oom(device: torch.device) -> Iterator[None]:
    """Turn a device OOM into ``OutOfMemory`` after freeing what the failed step held."""
    try:
        yield
    except (RuntimeError, torch.OutOfMemoryError) as err:
        if not _is_oom(err):
            raise
        _free(device)
        raise OutOfMemory(str(err).splitlines()[0]) from None


def _free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def resolve(device: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu`` or ``cuda:N``; a bad name is a ``DeviceError``."""
    return resolve_device(device)


def environment(device: torch.device) -> dict:
    """Machine, library versions and the accelerator's name and memory."""
    env = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "torch": torch.__version__, "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return env


# ---------------------------------------------------------------------------- 1. throughput


def throughput(settings: ReportSettings, device: torch.device) -> list[dict]:
    """Rows of ``dfpir.benchmark.benchmark`` per model, batch and mode (or a skip reason)."""
    budget = Budget(settings.bench_budget_s)
    rows = []
    modes = [m for m in MODES if m[0] in settings.modes]
    configs = {"DFPIR": DFPIRConfig(**settings.model),
               "Restormer": DFPIRConfig.restormer(**settings.model)}
    # cheap modes first for every model and batch, compiled ones last: a tight budget then
    # drops the compiled rows, not the basic ones
    order = [(mode, batch, name) for mode in modes for batch in settings.batches
             for name in configs]
    last_cost = 0.0
    for (mode, bf16, channels_last, compile_), batch, name in order:
        row = {"model": name, "batch": batch, "mode": mode, "size": settings.size}
        if device.type != "cuda" and compile_ and settings.quick:
            rows.append({**row, "skipped": "torch.compile takes minutes on a CPU"})
            continue
        if not budget.ok(last_cost * (4 if compile_ else 1)):
            rows.append({**row, "skipped": "section time budget spent"})
            continue
        start = time.perf_counter()
        torch.manual_seed(0)
        model = DFPIR(configs[name])
        try:
            with _catch_oom(device):
                if compile_:
                    importlib.import_module("torch._dynamo").reset()  # a fresh graph (and compile time) per row
                result = benchmark(model, name, device, settings.size, batch, bf16,
                                   channels_last, compile_, warmup=settings.bench_warmup,
                                   iters=settings.bench_iters)
                row.update(_bench_row(result))
        except OutOfMemory as err:
            row["oom"] = str(err)[:160]
        finally:
            del model
            _free(device)
        last_cost = time.perf_counter() - start
        row["section_s"] = round(last_cost, 1)
        rows.append(row)
        logger.info("throughput %s", row)
    return rows


def _bench_row(r: BenchResult) -> dict:
    return {
        "params": r.params, "gflops_forward_per_image": r.forward_flops / r.batch / 1e9,
        "forward_img_s": r.forward_ips, "train_img_s": r.train_ips,
        "forward_tflops": r.forward_tflops, "train_tflops": r.train_tflops,
        "peak_mib": r.peak_mem_mib, "compile_s": r.compile_s,
    }


# ---------------------------------------------------------------------------- 2. training


def photo_like(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random image with fine texture (compresses roughly like a photo), uint8."""
    cell = max(4, min(height, width) // 16)
    coarse = rng.random((height // cell + 2, width // cell + 2, 3))
    smooth = np.kron(coarse, np.ones((cell, cell, 1)))[:height, :width]
    texture = rng.normal(0.0, 0.03, (height, width, 3))
    return (np.clip(smooth * 0.8 + 0.1 + texture, 0.0, 1.0) * 255).round().astype(np.uint8)


def write_data_root(root: str | Path, images: int, scale: float = 1.0, seed: int = 0
                    ) -> dict[str, str]:
    """Generate a five-task training root in the configs' layout (``Train/<Family>``) with the
    real sets' image sizes (times ``scale``) and formats; returns family -> folder."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    folders = {"denoise": "Train/Denoise", "derain": "Train/Derain", "dehaze": "Train/Dehaze",
               "deblur": "Train/Deblur", "lowlight": "Train/Lowlight"}
    for family, (h, w, ext) in REAL_IMAGE_SIZES.items():
        h, w = max(16, round(h * scale)), max(16, round(w * scale))
        base = root / folders[family]
        for i in range(images):
            clean = photo_like(rng, h, w)
            degraded = np.clip(clean.astype(np.int16) + rng.integers(-20, 21, clean.shape),
                               0, 255).astype(np.uint8)
            if family == "denoise":
                write_image(base / f"{i:04d}.{ext}", clean)
            elif family == "derain":
                write_image(base / "rainy" / f"rain-{i}.png", degraded)
                write_image(base / "gt" / f"norain-{i}.png", clean)
            elif family == "dehaze":
                write_image(base / "synthetic" / "part1" / f"{i:04d}_0.8_0.2.jpg", degraded)
                write_image(base / "original" / f"{i:04d}.jpg", clean)
            elif family == "deblur":
                write_image(base / "blur" / f"{i:06d}.png", degraded)
                write_image(base / "sharp" / f"{i:06d}.png", clean)
            else:
                write_image(base / "low" / f"{i}.png", degraded)
                write_image(base / "high" / f"{i}.png", clean)
    return folders


def recipe_projection(cfg: ExperimentConfig, seconds_per_sample: dict[int, float]) -> dict:
    """Projected wall time of ``cfg``'s stages on the released training sets.

    ``seconds_per_sample`` maps a patch size to measured seconds per training sample at that
    patch; other patch sizes are scaled by their pixel count from the nearest measured one.
    """
    samples = 0
    for task in cfg.data.train_tasks:
        family = task.task.split("_")[0]
        samples += RELEASE_TRAIN_IMAGES.get(family, 0) * task.repeat
    stages = []
    total = 0.0
    for stage in cfg.train.stages:
        iters = (samples // stage.batch_size) * stage.epochs
        if stage.max_iters:
            iters = min(iters, stage.max_iters)
        ref = min(seconds_per_sample, key=lambda p: abs(p - stage.patch_size))
        per_sample = seconds_per_sample[ref] * (stage.patch_size / ref) ** 2
        hours = iters * stage.batch_size * per_sample / 3600
        total += hours
        stages.append({"stage": stage.name, "epochs": stage.epochs, "batch": stage.batch_size,
                       "patch": stage.patch_size, "iterations": iters,
                       "hours": round(hours, 2)})
    return {"recipe": cfg.name, "samples_per_epoch": samples, "stages": stages,
            "hours": round(total, 2)}


class _EnoughIterations(Exception):  # noqa: N818 (control flow, not an error)
    """Raised by the timed trainer after its last timed step: ends ``Trainer.run`` at once,
    without the stop-request path (which saves ``latest.pt`` and may raise its own error)."""


def _timed_trainer_class():
    from .train.trainer import Trainer

    class TimedTrainer(Trainer):
        """A Trainer that records when each batch arrives and when its step ends, and stops
        after ``limit`` iterations or ``deadline`` (perf_counter seconds). It relies only on
        ``_run_epoch`` (called per epoch) and ``_train_batch`` (called per batch)."""

        limit = 0
        deadline = math.inf

        def _run_epoch(self, *args, **kwargs):
            self.marks: list[tuple[float, float]] = getattr(self, "marks", [])
            self._last_end = time.perf_counter()
            return super()._run_epoch(*args, **kwargs)

        def _train_batch(self, *args, **kwargs):
            arrived = time.perf_counter()
            done = super()._train_batch(*args, **kwargs)  # ends with loss.item(): synced
            end = time.perf_counter()
            self.marks.append((arrived - self._last_end, end - arrived))
            self._last_end = end
            if len(self.marks) >= self.limit or end > self.deadline:
                raise _EnoughIterations()
            return done

    return TimedTrainer


def _train_config(base: ExperimentConfig, root: Path, batch: int, patch: int, iters: int,
                  cache_dir: str, bf16: bool, channels_last: bool, device: str, workers: int,
                  model: dict) -> ExperimentConfig:
    cfg = copy.deepcopy(base)
    # the generated root holds none of the released file lists' names: use its folders
    tasks = [dataclasses.replace(t, list_missing="scan") for t in cfg.data.train_tasks]
    data = dataclasses.replace(cfg.data, data_root=str(root), test_sets=[], cache_dir=cache_dir,
                               num_workers=workers, patch_size=patch, train_tasks=tasks)
    stage = dataclasses.replace(cfg.train.stages[0], batch_size=batch, max_iters=iters + 5,
                                patch_size=patch)
    train = dataclasses.replace(cfg.train, stages=[stage], bf16=bf16, channels_last=channels_last,
                                device=device, val_every=0, save_every_epochs=0,
                                save_every_iters=0, log_every=10**9)
    prompts = dataclasses.replace(cfg.prompts, encoder="hashed")
    model_cfg = dataclasses.replace(cfg.model, **model) if model else cfg.model
    return dataclasses.replace(cfg, data=data, train=train, prompts=prompts, model=model_cfg)


def _step_fits(model: DFPIR, optimizer: torch.optim.Optimizer, device: torch.device, batch: int,
               size: int, bf16: bool, channels_last: bool) -> bool:
    """One forward+backward+Adam step at ``batch`` x ``size``^2; False when it runs out of
    memory. Channels_last moves both the model and the input, as ``train.channels_last``."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    try:
        with _catch_oom(device):
            x = torch.rand(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
            p = torch.randn(batch, model.config.prompt_dim, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = (model(x, p).float() - x).abs().mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            _sync(device)
            return True
    except OutOfMemory:
        return False
    finally:
        _free(device)


def _training_model(settings: ReportSettings, device: torch.device, channels_last: bool
                    ) -> tuple[DFPIR, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = DFPIR(DFPIRConfig(**settings.model)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, torch.optim.Adam(model.parameters(), lr=1e-4)


def largest_batch(settings: ReportSettings, device: torch.device, bf16: bool,
                  budget: Budget, channels_last: bool = True) -> tuple[int, list[str]]:
    """The largest training batch (doubling, then bisection) whose forward+backward+Adam step
    fits in device memory at the recipe's patch size, in the memory format the timed run
    uses; CPU: ``max_batch_cap``."""
    notes: list[str] = []
    if device.type != "cuda":
        return min(settings.max_batch_cap, 8), ["CPU: no memory search"]
    model, optimizer = _training_model(settings, device, channels_last)

    def fits(batch: int) -> bool:
        return _step_fits(model, optimizer, device, batch, settings.size, bf16, channels_last)

    good, bad = 0, None
    batch = 8
    while batch <= settings.max_batch_cap and budget.ok(10):
        if fits(batch):
            good, batch = batch, batch * 2
        else:
            bad = batch
            break
    if bad is None and batch > settings.max_batch_cap:
        notes.append(f"stopped at the cap of {settings.max_batch_cap}")
    while bad is not None and bad - good > max(1, good // 8) and budget.ok(10):
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    _free(device)  # the caller frees the model once this returns
    # leave headroom for the DataLoader's pinned batches and allocator fragmentation
    return max(1, int(good * 0.9)), notes


def stage_memory(settings: ReportSettings, device: torch.device, cfg: ExperimentConfig,
                 budget: Budget) -> list[dict]:
    """Peak device memory of one training step of every stage of the recipe (its patch and
    batch), in fp32 and in bf16 + channels_last: the fine-tune's 192x192 crops cost more than
    the main stage's 128x128 ones."""
    rows = []
    scale = settings.size / cfg.train.stages[0].patch_size  # quick mode shrinks the crops
    for stage in cfg.train.stages:
        for bf16, channels_last in ((False, False), (True, True)):
            size = max(16, round(stage.patch_size * scale / 8) * 8)
            row = {"stage": stage.name, "patch": size, "batch": stage.batch_size,
                   "precision": "bf16+channels_last" if bf16 else "fp32"}
            if not budget.ok(5):
                rows.append({**row, "skipped": "section time budget spent"})
                continue
            model, optimizer = _training_model(settings, device, channels_last)
            _reset_peak(device)
            ok = _step_fits(model, optimizer, device, stage.batch_size, size, bf16,
                            channels_last)
            row.update({"peak_mib": _peak_mib(device)} if ok else {"oom": "out of memory"})
            del model, optimizer
            _free(device)
            rows.append(row)
    return rows


def compile_recompilation(settings: ReportSettings, device: torch.device,
                          cfg: ExperimentConfig, budget: Budget) -> dict:
    """Whether ``torch.compile`` compiles again when the crop changes between the stages
    (128 -> 192 in the paper): graphs compiled and seconds of the first step at each crop."""
    if device.type != "cuda" and settings.quick:
        return {"skipped": "torch.compile takes minutes on a CPU"}
    if not budget.ok(60):
        return {"skipped": "section time budget spent"}
    dynamo = importlib.import_module("torch._dynamo")
    counters = importlib.import_module("torch._dynamo.utils").counters
    dynamo.reset()
    counters.clear()
    model, optimizer = _training_model(settings, device, True)
    compiled = torch.compile(model)
    scale = settings.size / cfg.train.stages[0].patch_size
    out: dict = {"stages": []}
    for stage in cfg.train.stages:
        size = max(16, round(stage.patch_size * scale / 8) * 8)
        start = time.perf_counter()
        ok = _step_fits(compiled, optimizer, device, stage.batch_size, size, True, True)
        out["stages"].append({"stage": stage.name, "patch": size,
                              "first_step_s": round(time.perf_counter() - start, 1),
                              "graphs_so_far": int(counters["stats"]["unique_graphs"]),
                              **({} if ok else {"oom": "out of memory"})})
    del model, optimizer, compiled
    dynamo.reset()
    _free(device)
    return out


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
    runs = [(5, False, base.train.bf16, False), (5, True, base.train.bf16, False),
            (5, True, True, True), (max_batch, True, True, True)]
    default = (5, bool(base.data.cache_dir), base.train.bf16, base.train.channels_last)
    cache_dir = work_dir / "cache"
    for batch, cache, bf16, channels_last in runs:
        row = {"batch": batch, "cache": cache, "bf16": bf16, "channels_last": channels_last,
               "recipe_default": (batch, cache, bf16, channels_last) == default}
        if not budget.ok(5):
            out["runs"].append({**row, "skipped": "section time budget spent"})
            continue
        cfg = _train_config(base, root, batch, settings.size, settings.train_iters,
                            str(cache_dir) if cache else "", bf16, channels_last, str(device),
                            settings.num_workers, settings.model)
        if cache:
            fill_cache(training_image_paths(cfg.data), cache_dir)
        row.update(_timed_run(cfg, work_dir / f"run_b{batch}_c{int(cache)}_bf{int(bf16)}",
                              settings, budget, device))
        out["runs"].append(row)
        logger.info("training %s", row)
        flush()
    out["stage_memory"] = stage_memory(settings, device, base, budget)
    flush()
    out["compile"] = compile_recompilation(settings, device, base, budget)
    flush()
    measured = [r for r in out["runs"] if r.get("it_s") and r["batch"] == 5]
    fastest = {}
    for r in measured:
        fastest[r["bf16"]] = max(fastest.get(r["bf16"], 0.0), r["it_s"])
    out["projections"] = {}
    for bf16, it_s in fastest.items():
        per_sample = {settings.size: 1.0 / (it_s * 5)}
        key = "bf16" if bf16 else "fp32"
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
            trainer.limit = settings.train_iters
            trainer.deadline = time.perf_counter() + min(settings.train_run_budget_s,
                                                         max(budget.left(), 1.0))
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
            "it_s": len(steady) / total if total else None,
            "samples_s": len(steady) * cfg.train.stages[0].batch_size / total if total else None,
            "data_wait_fraction": wait / total if total else None,
            "peak_mib": _peak_mib(device)}


# ---------------------------------------------------------------------------- 3. inference


def inference(settings: ReportSettings, device: torch.device) -> list[dict]:
    """Whole and tiled restoration of large images in fp32 and bf16, with bf16's PSNR."""
    budget = Budget(settings.infer_budget_s)
    torch.manual_seed(0)
    model = DFPIR(DFPIRConfig(**settings.model)).to(device).eval()
    prompt = torch.randn(model.config.prompt_dim, device=device)
    rows = []
    rng = np.random.default_rng(0)
    for height, width in settings.infer_sizes:
        image = torch.from_numpy(photo_like(rng, height, width)).permute(2, 0, 1).float() / 255
        image = image.to(device)
        for tile in (0, settings.tile):
            outputs = {}
            for amp in ("none", "bf16"):
                row = {"image": f"{width}x{height}", "tile": tile or "whole",
                       "precision": "fp32" if amp == "none" else "bf16"}
                if not budget.ok(1):
                    rows.append({**row, "skipped": "section time budget spent"})
                    continue
                _reset_peak(device)
                try:
                    with _catch_oom(device):
                        restore(model, image[..., :64, :64], prompt, amp=amp)  # warm-up
                        _sync(device)
                        start = time.perf_counter()
                        out = restore(model, image, prompt, tile=tile, amp=amp,
                                      overlap=min(32, settings.tile // 4))
                        _sync(device)
                        row["seconds"] = time.perf_counter() - start
                        row["peak_mib"] = _peak_mib(device)
                        outputs[amp] = out
                except OutOfMemory as err:
                    row["oom"] = str(err)[:160]
                rows.append(row)
                logger.info("inference %s", row)
            if len(outputs) == 2:
                mse = float(torch.mean((outputs["bf16"] - outputs["none"]) ** 2))
                rows[-1]["psnr_bf16_vs_fp32"] = 10 * math.log10(1 / mse) if mse else math.inf
            outputs.clear()
            _free(device)
    del model
    _free(device)
    return rows


# ---------------------------------------------------------------------------- 4. precision


def precision(settings: ReportSettings, device: torch.device) -> dict:
    """On this device: the DGCPM channel orders of every DGPB under bf16 and fp16 autocast, with
    TF32 allowed, against fp32 (four random unit prompts; they must be equal), and whether a
    1280x720 restore under fp16 is finite, with its PSNR against fp32."""
    from .models import DGCPM
    from .models.precision import set_backend_precision

    torch.manual_seed(0)
    model = DFPIR(DFPIRConfig(**settings.model)).to(device).eval()
    prompts = torch.nn.functional.normalize(torch.randn(4, model.config.prompt_dim), dim=-1)
    image = torch.rand(4, 3, 32, 32, device=device)
    seen: list[torch.Tensor] = []
    order_of = DGCPM.channel_order

    def recorded(self, scores):
        values, index = order_of(self, scores)
        seen.append(index.cpu())
        return values, index

    out: dict = {"orders": []}
    previous = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                torch.backends.cudnn.benchmark)
    DGCPM.channel_order = recorded
    try:
        orders = {}
        for amp, tf32 in (("none", False), ("none", True), ("bf16", True), ("fp16", True)):
            set_backend_precision(tf32, False)
            seen.clear()
            with torch.no_grad(), autocast_context(device, amp):
                model(image, prompts.to(device))
            orders[(amp, tf32)] = list(seen)
        reference = orders[("none", False)]
        for (amp, tf32), got in orders.items():
            out["orders"].append({
                "amp": amp, "tf32": tf32,
                "differing_positions": [int((a != b).sum()) for a, b in zip(reference, got,
                                                                            strict=True)],
                "positions": [a.numel() for a in reference]})
    finally:
        DGCPM.channel_order = order_of
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = previous
    height, width = settings.infer_sizes[0]
    big = torch.rand(1, 3, height, width, device=device)
    with torch.no_grad():
        ref = model(big, prompts[:1].to(device)).float()
        with autocast_context(device, "fp16"):
            half = model(big, prompts[:1].to(device)).float()
    mse = float(torch.mean((half - ref) ** 2))
    out["fp16_image"] = {"image": f"{width}x{height}", "finite": bool(torch.isfinite(half).all()),
                         "psnr_vs_fp32": 10 * math.log10(1 / mse) if mse else math.inf}
    del model
    _free(device)
    return out


# ---------------------------------------------------------------------------- the report


def run_report(out_dir: str | Path, settings: ReportSettings | None = None,
               config_path: str | Path = "configs/five_task.yaml",
               sections: tuple[str, ...] = SECTIONS,
               progress: Callable[[str], None] | None = None) -> dict:
    """Measure every section and write ``device_report.md`` and ``.json`` in ``out_dir``,
    rewritten after every section and every training run: a lease that ends mid-run leaves a
    report of what was measured."""
    settings = settings or ReportSettings()
    device = resolve(settings.device)
    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {"settings": dataclasses.asdict(settings), "environment": environment(device),
                    "sections": list(sections)}
    start = time.perf_counter()

    def flush() -> None:
        report["total_s"] = round(time.perf_counter() - start, 1)
        (out_dir / "device_report.json").write_text(json.dumps(report, indent=1, default=str))
        (out_dir / "device_report.md").write_text(markdown(report))

    threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    with contextlib.ExitStack() as stack:
        stack.callback(torch.set_num_threads, threads)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="dfpir_report_"))
        flush()
        if "precision" in sections:
            say("precision ...")
            report["precision"] = precision(settings, device)
            flush()
        if "throughput" in sections:
            say("model throughput ...")
            report["throughput"] = throughput(settings, device)
            flush()
        if "training" in sections:
            say("end-to-end training ...")
            report["training"] = {}
            training(settings, device, config_path, Path(tmp), report["training"], flush)
            flush()
        if "inference" in sections:
            say("inference ...")
            report["inference"] = inference(settings, device)
    report["complete"] = True
    flush()
    return report


def _f(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _status(row: dict) -> str | None:
    if "skipped" in row:
        return f"skipped: {row['skipped']}"
    if "oom" in row:
        return "out of memory"
    return None


def markdown(report: dict) -> str:
    """The report as Markdown: an environment line and one table per section."""
    env = report["environment"]
    where = env.get("gpu", f"CPU ({env['cpu']}, {env['cpu_count']} cores)")
    lines = [f"### Device report: {where}", ""]
    lines.append(
        f"`python scripts/device_report.py{' --quick' if report['settings']['quick'] else ''}`"
        f", {env['date_utc']} UTC, torch {env['torch']}"
        + (f", CUDA {env['cuda']}, {env['gpu_memory_gib']} GiB" if "gpu" in env else "")
        + f"; took {report['total_s']} s."
    )
    if report["settings"]["quick"]:
        lines.append("")
        lines.append("*Quick mode: tiny model and images; the numbers only show that every "
                     "path runs.*")
    if not report.get("complete"):
        lines += ["", "*Partial report: the run was still going (or was cut short) when this "
                      "was written; the sections below are what it had measured.*"]
    if "precision" in report:
        p = report["precision"]
        lines += ["", "#### Precision (channel orders of every DGPB against fp32, TF32 off)", "",
                  "| autocast | TF32 | positions that differ, per DGPB (level 1 .. latent) |",
                  "|---|---|---|"]
        for r in p["orders"]:
            diffs = ", ".join(f"{d} of {n}" for d, n in
                              zip(r["differing_positions"], r["positions"], strict=True))
            lines.append(f"| {r['amp']} | {r['tf32']} | {diffs} |")
        if "fp16_image" in p:
            f = p["fp16_image"]
            lines += ["", f"fp16 autocast on a {f['image']} image: finite {f['finite']}, "
                          f"PSNR against fp32 {f['psnr_vs_fp32']:.1f} dB."]
    if "throughput" in report:
        s = report["settings"]["size"]
        lines += ["", f"#### Model throughput ({s}x{s}, forward+backward = one training step "
                      "without the optimizer)", "",
                  "| model | batch | mode | fwd img/s | fwd+bwd img/s | train TFLOP/s | "
                  "peak MiB | compile s |", "|---|---|---|---|---|---|---|---|"]
        for r in report["throughput"]:
            status = _status(r)
            if status:
                lines.append(f"| {r['model']} | {r['batch']} | {r['mode']} | {status} "
                             "| | | | |")
                continue
            lines.append(
                f"| {r['model']} | {r['batch']} | {r['mode']} | {_f(r['forward_img_s'], 1)} | "
                f"{_f(r['train_img_s'], 1)} | {_f(r['train_tflops'], 1)} | "
                f"{_f(r['peak_mib'], 0)} | {_f(r['compile_s'], 1)} |")
    if report.get("training"):
        t = report["training"]
        lines += ["", "#### End-to-end training (five-task recipe, full Trainer, generated data)",
                  "", "Images per family: " + str(t["images_per_family"]) + "; sizes: "
                  + ", ".join(f"{k} {v}" for k, v in t["image_sizes"].items())
                  + f". Largest batch that fits (bf16 + channels_last, as the run that uses "
                    f"it): {t.get('largest_batch', '-')}.", "",
                  "| batch | decode cache | bf16 | channels_last | it/s | samples/s | "
                  "waiting for data | peak MiB | iterations |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in t.get("runs", []):
            default = " (recipe default)" if r.get("recipe_default") else ""
            head = (f"| {r['batch']}{default} | {r['cache']} | {r['bf16']} | "
                    f"{r['channels_last']} |")
            status = _status(r)
            if status:
                lines.append(f"{head} {status} | | | | |")
                continue
            wait = r.get("data_wait_fraction")
            lines.append(f"{head} {_f(r['it_s'])} | {_f(r['samples_s'], 1)} | "
                         f"{'-' if wait is None else f'{100 * wait:.1f}%'} | "
                         f"{_f(r['peak_mib'], 0)} | {r['iterations']} |")
        if t.get("stage_memory"):
            lines += ["", "Peak memory of one training step per stage (its crop and batch):", "",
                      "| stage | crop | batch | precision | peak MiB |", "|---|---|---|---|---|"]
            for r in t["stage_memory"]:
                status = _status(r)
                lines.append(f"| {r['stage']} | {r['patch']} | {r['batch']} | {r['precision']} "
                             f"| {status or _f(r.get('peak_mib'), 0)} |")
        compiled = t.get("compile")
        if compiled:
            if "skipped" in compiled:
                lines += ["", f"torch.compile across the stages' crops: skipped "
                              f"({compiled['skipped']})."]
            else:
                steps = "; ".join(f"{r['stage']} {r['patch']}x{r['patch']}: first step "
                                  f"{r['first_step_s']} s, {r['graphs_so_far']} graph(s) so far"
                                  for r in compiled["stages"])
                lines += ["", f"torch.compile across the stages' crops (bf16 + channels_last): "
                              f"{steps}."]
        if t.get("projections"):
            lines += ["", "Projected wall time of the paper's recipes at batch 5 (released "
                          "training sets; the 192x192 fine-tune scaled by pixels):", "",
                      "| precision | recipe | samples/epoch | stages | hours |",
                      "|---|---|---|---|---|"]
            for precision, projections in t["projections"].items():
                for p in projections:
                    stages = "; ".join(f"{s['stage']} {s['epochs']} ep x {s['iterations']:,} it"
                                       for s in p["stages"])
                    lines.append(f"| {precision} | {p['recipe']} | {p['samples_per_epoch']:,} "
                                 f"| {stages} | {p['hours']:.1f} |")
    if "inference" in report:
        lines += ["", "#### Inference (one image, `dfpir.inference.restore`)", "",
                  "| image | tile | precision | seconds | peak MiB | PSNR bf16 vs fp32 |",
                  "|---|---|---|---|---|---|"]
        for r in report["inference"]:
            head = f"| {r['image']} | {r['tile']} | {r['precision']} |"
            status = _status(r)
            if status:
                lines.append(f"{head} {status} | | |")
                continue
            psnr = r.get("psnr_bf16_vs_fp32")
            lines.append(f"{head} {_f(r['seconds'], 3)} | {_f(r['peak_mib'], 0)} | "
                         f"{'-' if psnr is None else f'{psnr:.1f} dB'} |")
    return "\n".join(lines) + "\n"
