"""What every device-report measurement shares: section time budgets, out-of-memory handling
that frees the failed step, device syncs and peak memory, and the machine's description."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import time
from collections.abc import Iterator

import torch

from ..device import is_out_of_memory, resolve_device


class OutOfMemory(RuntimeError):
    """A measurement ran out of device memory."""


class Budget:
    """Seconds left for one section; ``ok(estimate)`` says whether another step fits."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)

    def ok(self, estimate: float = 0.0) -> bool:
        return self.left() > estimate


@contextlib.contextmanager
def _catch_oom(device: torch.device) -> Iterator[None]:
    """Turn a device OOM into ``OutOfMemory`` after freeing what the failed step held."""
    try:
        yield
    except (RuntimeError, torch.OutOfMemoryError) as err:
        if not is_out_of_memory(err):
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


def row_text(row: dict) -> str:
    """A measured row as one readable progress line: ``key value`` pairs, numbers to 3
    figures, empty values left out."""
    def shown(value: object) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{k} {shown(v)}" for k, v in row.items() if v not in (None, "", [], {}))
