"""Kernels per training step, counted with ``torch.profiler``.

On CUDA: the kernel launches the host makes (a replayed CUDA graph is one launch, whatever it
holds). On a CPU, the proxy the GPU count follows: the aten operators that compute (those that
call no other aten operator and are not views or allocations: each is at least one kernel on
a GPU) plus the kernels inductor generated (one Triton launch each on a GPU). Inductor's CPU
kernels are visible only when compiled with ``torch._inductor.config.cpp.enable_kernel_profile``
(``profile_inductor_kernels``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

__all__ = ["count_kernels", "profile_inductor_kernels"]

#: aten operators that only describe or allocate memory: no kernel on any device.
NO_KERNEL = frozenset(
    f"aten::{name}" for name in (
        "view", "_unsafe_view", "as_strided", "permute", "reshape", "_reshape_alias", "expand",
        "t", "transpose", "unsqueeze", "squeeze", "select", "slice", "split", "split_with_sizes",
        "chunk", "unbind", "narrow", "diagonal", "detach", "alias", "lift_fresh", "empty",
        "empty_strided", "empty_like", "resize_", "flatten", "view_as", "expand_as",
        "unflatten", "contiguous", "to", "result_type", "is_nonzero", "item",
        "_local_scalar_dense", "set_", "_has_compatible_shallow_copy_type", "numel", "size",
        "stride", "dim", "is_same_size", "broadcast_tensors",
    )
)

#: CUDA runtime/driver calls that launch kernels (or a whole CUDA graph).
LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx",
            "cudaGraphLaunch", "cudaLaunchCooperativeKernel")


def profile_inductor_kernels() -> None:
    """Make inductor's CPU kernels show in the profiler (set before the first compile)."""
    torch._inductor.config.cpp.enable_kernel_profile = True


def count_kernels(step: Callable[[], object], device: torch.device) -> int:
    """Kernels that one call of ``step`` runs on ``device`` (see the module's note)."""
    activities = [ProfilerActivity.CPU]
    if device.type != "cuda":  # kineto's own start/stop lines and "no GPU" error: noise here
        os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # read when it starts (a user's wins)
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
        torch.cuda.synchronize(device)
    with profile(activities=activities) as prof:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    events = prof.events()
    if device.type == "cuda":
        return sum(1 for e in events if e.name.startswith(LAUNCHES))
    return sum(1 for e in events if _is_cpu_kernel(e))


def _is_cpu_kernel(event) -> bool:
    name = event.name
    if "cpp_fused" in name:
        return True
    if not name.startswith("aten::") or name in NO_KERNEL:
        return False
    return not any(child.name.startswith("aten::") for child in event.cpu_children)
