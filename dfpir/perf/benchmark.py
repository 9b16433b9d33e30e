"""Model cost and speed: parameters, FLOPs, images per second, peak memory."""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..device import sync_device
from ..models import DFPIR


@dataclass
class BenchResult:
    """One benchmark row. ``flops`` counts a multiply-add as 2."""

    name: str
    params: int
    forward_flops: float
    device: str
    dtype: str
    size: int
    batch: int
    channels_last: bool
    compiled: bool
    forward_ips: float | None = None
    train_ips: float | None = None
    peak_mem_mib: float | None = None
    forward_tflops: float | None = None
    train_tflops: float | None = None
    compile_s: float | None = None  # warm-up seconds of a compiled model (compilation)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_flops(model: DFPIR, size: int, batch: int = 1, prompt_dim: int = 512) -> float:
    """Forward FLOPs (multiply-add = 2) of one (batch, 3, size, size) input.

    Counted on the model's device for one image and scaled by ``batch`` (every operation of
    the network is per sample), so a large batch costs no long CPU run.
    """
    device = next(model.parameters()).device
    x = torch.zeros(1, model.config.in_channels, size, size, device=device)
    prompt = torch.zeros(1, prompt_dim, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, prompt)
    return float(counter.get_total_flops()) * batch


_sync = sync_device  # the project's one device sync (dfpir.inference)


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # process-wide peak resident set size (kilobytes on Linux, bytes on macOS)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def _time(step, device: torch.device, warmup: int, iters: int, min_seconds: float
          ) -> tuple[float, float]:
    """Seconds per call of ``step`` after warm-up (at least ``iters`` calls), and the seconds
    the warm-up took (compilation, autotuning)."""
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    warmup_s = time.perf_counter() - start
    n, start = 0, time.perf_counter()
    while n < iters or time.perf_counter() - start < min_seconds:
        step()
        n += 1
    _sync(device)
    return (time.perf_counter() - start) / n, warmup_s


def benchmark(
    model: DFPIR,
    name: str,
    device: str | torch.device = "cpu",
    size: int = 128,
    batch: int = 2,
    bf16: bool = False,
    channels_last: bool = False,
    compile: bool = False,
    warmup: int = 2,
    iters: int = 5,
    min_seconds: float = 0.0,
    train: bool = True,
) -> BenchResult:
    """Time forward (no grad) and forward+backward of ``model`` on random inputs."""
    device = torch.device(device)
    params = count_params(model)
    model = model.to(device)
    flops = forward_flops(model, size, batch, model.config.prompt_dim)
    x = torch.rand(batch, model.config.in_channels, size, size, device=device)
    prompt = torch.randn(batch, model.config.prompt_dim, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    run = torch.compile(model) if compile else model
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def forward_step() -> None:
        with torch.no_grad(), autocast:
            run(x, prompt)

    def train_step() -> None:
        with autocast:
            loss = (run(x, prompt) - x).abs().mean()
        loss.backward()
        model.zero_grad(set_to_none=True)

    result = BenchResult(
        name, params, flops, str(device), "bf16" if bf16 else "fp32", size, batch,
        channels_last, compile,
    )
    model.eval()
    t_fwd, compile_s = _time(forward_step, device, warmup, iters, min_seconds)
    result.forward_ips = batch / t_fwd
    if train:
        model.train()
        t_train, warmup_s = _time(train_step, device, warmup, iters, min_seconds)
        result.train_ips = batch / t_train
        compile_s += warmup_s
    if compile:
        result.compile_s = compile_s
    result.peak_mem_mib = _peak_memory_mib(device)
    if device.type == "cuda":
        result.forward_tflops = flops / t_fwd / 1e12
        if train:
            result.train_tflops = 3 * flops / t_train / 1e12  # backward ~ 2x forward
    return result


def markdown_table(results: list[BenchResult]) -> str:
    """Results as a Markdown table."""
    head = (
        "| model | params | GFLOPs (fwd) | device | dtype | input | channels_last | compile | "
        "fwd img/s | fwd+bwd img/s | peak MiB | fwd TFLOP/s | train TFLOP/s |"
    )
    rows = [head, "|" + "---|" * 13]

    def fmt(v: float | None, digits: int = 2) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    for r in results:
        rows.append(
            f"| {r.name} | {r.params:,} | {r.forward_flops / 1e9:.1f} | {r.device} | {r.dtype} | "
            f"{r.batch}x3x{r.size}x{r.size} | {r.channels_last} | {r.compiled} | "
            f"{fmt(r.forward_ips)} | {fmt(r.train_ips)} | {fmt(r.peak_mem_mib, 0)} | "
            f"{fmt(r.forward_tflops)} | {fmt(r.train_tflops)} |"
        )
    return "\n".join(rows)
