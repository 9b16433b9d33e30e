"""Device-report sections 2 and 4: model throughput per mode and batch (``dfpir.perf.benchmark``),
and whole/tiled inference of large images in fp32 and bf16."""

from __future__ import annotations

import importlib
import logging
import math
import time

import numpy as np
import torch

from ..models import DFPIR, DFPIRConfig
from ..restore import restore
from .benchmark import BenchResult, benchmark
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
from .settings import MODES, ReportSettings
from .train_data import (
    photo_like,
)

logger = logging.getLogger(__name__)


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
        # a first compile of the full model took 347 s on an H200 (torch 2.11)
        needed = max(last_cost * 4, 400.0 if device.type == "cuda" else 0.0) if compile_ \
            else last_cost
        if not budget.ok(needed):
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
        logger.info("throughput: %s", row_text(row))
    return rows


def _bench_row(r: BenchResult) -> dict:
    return {
        "params": r.params, "gflops_forward_per_image": r.forward_flops / r.batch / 1e9,
        "forward_img_s": r.forward_ips, "train_img_s": r.train_ips,
        "forward_tflops": r.forward_tflops, "train_tflops": r.train_tflops,
        "peak_mib": r.peak_mem_mib, "compile_s": r.compile_s,
    }


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
                        # timed the second time: a GPU's first call at a new size loads
                        # kernels for seconds (4.7 s at 1280x720 on an H200, then 0.27 s)
                        for _ in range(2):
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
                logger.info("inference: %s", row_text(row))
            if len(outputs) == 2:
                mse = float(torch.mean((outputs["bf16"] - outputs["none"]) ** 2))
                rows[-1]["psnr_bf16_vs_fp32"] = 10 * math.log10(1 / mse) if mse else math.inf
            outputs.clear()
            _free(device)
    del model
    _free(device)
    return rows

