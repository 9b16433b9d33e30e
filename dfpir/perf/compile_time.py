"""Compile time and warm step time of the training step in each ``train.compile`` mode: one
fresh process per mode with an empty inductor cache (so no mode reuses another's kernels), a
``TrainStep`` on random crops, the first step timed (compilation) and the median of the next.
On a CPU this is the proxy of the GPU's compile time (inductor's work, other kernels)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import torch

__all__ = ["CompileTiming", "markdown", "time_mode", "time_modes"]


@dataclass
class CompileTiming:
    """One mode's first step (seconds, compilation included), warm median, graphs and
    kernels per step (``kernel_count``'s CPU proxy of the GPU's launches)."""

    mode: str
    first_step_s: float
    warm_step_s: float
    graphs: int
    kernels: int
    dim: int
    batch: int
    patch: int
    threads: int


def time_mode(mode: str, dim: int, batch: int, patch: int, steps: int,
              threads: int) -> CompileTiming:
    """In this process: the training step of a dim-``dim`` DFPIR compiled in ``mode``."""
    from torch._dynamo.utils import counters

    from ..config import TrainConfig
    from ..models import DFPIR, DFPIRConfig
    from ..models.compiling import compile_network
    from ..train.train_step import TrainStep
    from .kernel_count import count_kernels, profile_inductor_kernels

    profile_inductor_kernels()
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    model = DFPIR(DFPIRConfig(dim=dim))
    net = compile_network(model, model, mode, device)
    step = TrainStep(model, net, TrainConfig(), {"derain": torch.randn(512)}, device)
    step.use(torch.optim.Adam(model.parameters(), lr=1e-4,
                                     fused=True if mode != "none" else None))
    clean = torch.rand(batch, 3, patch, patch)
    degraded = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        step(degraded, clean, ["derain"] * batch)
        times.append(time.perf_counter() - start)
    kernels = count_kernels(lambda: step(degraded, clean, ["derain"] * batch), device)
    return CompileTiming(mode, times[0], statistics.median(times[1:]),
                         int(counters["stats"]["unique_graphs"]), kernels, dim, batch, patch,
                         threads)


def time_modes(modes: list[str], dim: int = 16, batch: int = 8, patch: int = 32,
               steps: int = 10, threads: int = 1) -> list[CompileTiming]:
    """``time_mode`` for each mode, each in a fresh process with its own empty inductor cache."""
    results = []
    for mode in modes:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
            code = ("import json, sys; from dataclasses import asdict; "
                    "from dfpir.perf.compile_time import time_mode; "
                    f"print(json.dumps(asdict(time_mode({mode!r}, {dim}, {batch}, {patch}, "
                    f"{steps}, {threads}))))")
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"mode {mode}: {done.stderr.strip().splitlines()[-1:]}")
            results.append(CompileTiming(**json.loads(done.stdout.strip().splitlines()[-1])))
    return results


def markdown(results: list[CompileTiming]) -> str:
    """The results as a table, with each mode's first step and warm step against eager's."""
    first = next((r for r in results if r.mode == "none"), None)
    lines = ["| mode | first step (s) | warm step (s) | graphs | kernels per step | "
             "warm vs eager |", "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        ratio = f"x{first.warm_step_s / r.warm_step_s:.2f}" if first else "-"
        lines.append(f"| {r.mode} | {r.first_step_s:.1f} | {r.warm_step_s:.3f} | {r.graphs} | "
                     f"{r.kernels} | {ratio} |")
    return "\n".join(lines) + "\n"


