"""The device a command runs on: resolving its name, waiting for it, autocast, and the CPU
allocator knob. Every package that touches a device goes through here."""

from __future__ import annotations

import contextlib
import ctypes

import torch

from .errors import ConfigError, DeviceError

__all__ = ["AMP_DTYPES", "autocast_context", "is_out_of_memory", "keep_freed_memory",
           "resolve_device", "sync_device"]

#: Names accepted for mixed-precision inference.
AMP_DTYPES: dict[str, torch.dtype | None] = {
    "none": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is the first CUDA GPU when there is one, else the CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise DeviceError(f"unknown device {device!r}; expected auto, cpu, cuda or cuda:N") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {device!r} requested but CUDA is not available here; use "
                          "--device cpu (or auto)")
    if resolved.type == "cuda" and resolved.index is not None \
            and resolved.index >= torch.cuda.device_count():
        raise DeviceError(f"device {device!r} requested but this machine has "
                          f"{torch.cuda.device_count()} CUDA device(s)")
    return resolved


def sync_device(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so wall-clock timings measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast_context(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``amp`` in ``AMP_DTYPES`` (``None``/"none": full precision)."""
    name = amp or "none"
    if name not in AMP_DTYPES:
        raise ConfigError(f"unknown amp mode {amp!r}; expected one of {list(AMP_DTYPES)}")
    dtype = AMP_DTYPES[name]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)




def keep_freed_memory() -> bool:
    """Stop glibc from handing large freed blocks back to the OS after every tensor (CPU only).

    Otherwise each big activation is a fresh mmap whose pages fault in again on every step,
    which adds tens of percent of system time and makes CPU timings depend on what ran before.
    Returns False where the C library has no ``mallopt`` (not glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 2**30)) and bool(
            libc.mallopt(m_trim_threshold, 2**31 - 1)
        )
    except (OSError, AttributeError):
        return False


# torch.OutOfMemoryError (the caching allocator), and the RuntimeErrors of CUDA, cuDNN and
# cuBLAS when an allocation inside them fails
_OOM_TEXTS = ("out of memory", "cudnn_status_alloc_failed", "cublas_status_alloc_failed")


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is a device out-of-memory error, in any of the forms torch raises."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and any(t in str(err).lower() for t in _OOM_TEXTS)
