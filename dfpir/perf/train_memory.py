"""Training memory on a device: the largest batch that fits, each stage's peak memory, and whether
``torch.compile`` compiles again when the crop changes between stages."""

from __future__ import annotations

import importlib
import time

import torch

from ..config import ExperimentConfig
from ..models import DFPIR, DFPIRConfig
from .measure import (
    Budget,
    OutOfMemory,
    _catch_oom,
    _free,
    _peak_mib,
    _reset_peak,
    _sync,
)
from .settings import ReportSettings


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
    if not settings.compile_check:
        return {"skipped": "--no-compile"}
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

