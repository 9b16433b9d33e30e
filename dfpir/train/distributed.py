"""One process or many (``torchrun``): the process group, the device, rank-0 helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from ..device import resolve_device


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    wait_group: Any = None  # gloo group with a long timeout, for waits outside the steps

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank on the long-timeout gloo group: a rank-0-only task (a checkpoint
        write, a slow validation shard) never trips the training collectives' timeout."""
        if self.distributed:
            dist.barrier(group=self.wait_group)

    def any_stop(self, asked: bool, signum: int | None) -> tuple[bool, int | None]:
        """Whether any rank asked to stop, and a signal one of them got (on the long-timeout
        group: for checks outside the training steps, which agree in their own all-reduce)."""
        if not self.distributed:
            return asked, signum
        flags = torch.tensor([int(asked), int(signum or 0)])
        dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.wait_group)
        return bool(flags[0]), int(flags[1]) or None


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' is the local CUDA device when there is one, else the CPU (checked by
    ``dfpir.inference.resolve_device``, the one device resolver; raises ``DeviceError``)."""
    device = resolve_device(name)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def setup(device: str = "auto", timeout_s: float = 1800.0, wait_timeout_s: float = 86400.0
          ) -> DistContext:
    """Join the process group that ``torchrun`` describes (WORLD_SIZE, RANK, LOCAL_RANK), or run
    as a single process when those are not set. NCCL on CUDA, gloo on the CPU, with the training
    collectives' ``timeout_s``; waits outside the steps use a gloo group of ``wait_timeout_s``.
    Each rank's GPU is ``cuda:LOCAL_RANK`` on every node."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local)
    wait_group = None
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo",
                                    timeout=timedelta(seconds=timeout_s))
        wait_group = dist.new_group(backend="gloo", timeout=timedelta(seconds=wait_timeout_s))
    return DistContext(rank, world, local, dev, wait_group)


_PEER_TEXTS = ("connection closed by peer", "connection reset by peer", "remote worker",
               "broken pipe", "timed out", "timeout", "nccl error", "ncclremoteerror")


def peer_failure(err: BaseException, ctx: DistContext) -> bool:
    """Whether ``err`` is a collective that failed because of another rank (it ended, or did
    not answer within the timeout) rather than an error of this rank's own."""
    if not ctx.distributed:
        return False
    text = str(err).lower()
    return isinstance(err, dist.DistError) or (
        isinstance(err, RuntimeError) and any(t in text for t in _PEER_TEXTS))


def teardown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(value: torch.Tensor, ctx: DistContext, wait: bool = False) -> torch.Tensor:
    """The sum of ``value`` over the ranks (a copy; ``value`` itself when alone). ``wait``: on
    the long-timeout gloo group (a CPU tensor), for sums after unevenly long work."""
    if ctx.distributed:
        value = value.clone()
        dist.all_reduce(value, group=ctx.wait_group if wait else None)
    return value


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank (over the wait group: rank 0 may have been busy)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=ctx.wait_group)
    return box[0]


def match_grad_strides(model: torch.nn.Module) -> int:
    """Give each depthwise convolution's weight gradient its weight's strides. On the CPU the
    gradient of a (C, 1, 3, 3) weight comes back with another stride on its size-1 axis; DDP
    then warns ("Grad strides do not match bucket view strides") and copies it into its bucket
    every step. The strides differ only on axes of size 1, so the gradient with the weight's
    strides is a view of the same memory: no copy. Returns the number of weights hooked."""
    def hook_for(weight: torch.nn.Parameter):
        def same_strides(grad: torch.Tensor) -> torch.Tensor:
            if grad.stride() == weight.stride() or grad.shape != weight.shape or any(
                    a != b and n != 1 for a, b, n in zip(grad.stride(), weight.stride(),
                                                         weight.shape, strict=True)):
                return grad
            return grad.as_strided(weight.shape, weight.stride(), grad.storage_offset())
        return same_strides

    count = 0
    for module in model.modules():
        if (isinstance(module, torch.nn.Conv2d) and module.groups > 1
                and module.weight.requires_grad and module.weight.shape[1] == 1):
            module.weight.register_hook(hook_for(module.weight))
            count += 1
    return count
