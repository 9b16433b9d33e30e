"""The training network's fast modes (``train.compile``): ``torch.compile`` of the whole
network, or of each repeated block (regional compilation), and the eager runs beside them.

Regional compilation compiles each Restormer ``TransformerBlock`` in place (28 of them in the
paper's model, at five shapes), so compile time is paid once per block shape, not once per
block. The four DGPBs run eager there: each has a shape of its own (compiling one serves no
other) and its DGM stays eager and in fp32 anyway (its scores choose the channel order); the
whole-network modes compile them too. Every mode compiles with
static shapes: one compile per block shape and stage (a stage's crop size is fixed), none per
step. Validation and the checkpoints' loss check run the same modules at other shapes and
modes, so they run eager (``eager``), never recompiling.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn

from .restormer import TransformerBlock

__all__ = ["COMPILE_MODES", "CompileMode", "REGIONS", "compile_network", "eager",
           "resolve_compile_mode"]

CompileMode = Literal["none", "auto", "regional", "default", "reduce-overhead", "max-autotune"]
COMPILE_MODES: tuple[str, ...] = CompileMode.__args__

#: The repeated block classes that regional compilation compiles, each instance in place.
REGIONS = (TransformerBlock,)

#: Compiles one code object may hold before torch falls back to eager: the blocks' shapes
#: (levels x stages, about 10 for the paper's recipe) need more than torch's default 8.
RECOMPILE_LIMIT = 64


def resolve_compile_mode(mode: str | bool, device: torch.device) -> str:
    """The mode to run: ``auto`` is ``regional`` on CUDA (compile time bounded by the block
    shapes) and ``none`` elsewhere (on a CPU compiling costs minutes for no speed-up, see
    docs/speed.md); ``True``/``False`` are the old boolean form (``default``/``none``)."""
    if isinstance(mode, bool):
        return "default" if mode else "none"
    if mode not in COMPILE_MODES:
        raise ValueError(f"train.compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    if mode == "auto":
        return "regional" if device.type == "cuda" else "none"
    return mode


def compile_network(net: nn.Module, model: nn.Module, mode: str | bool,
                    device: torch.device) -> nn.Module:
    """What batches go through in ``mode``: ``net`` itself (``none``; ``regional``, whose
    blocks of ``model`` are compiled in place) or ``torch.compile(net)`` with that mode."""
    mode = resolve_compile_mode(mode, device)
    if mode == "none":
        return net
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit,
                                               RECOMPILE_LIMIT)
    if mode == "regional":
        for module in model.modules():
            if isinstance(module, REGIONS):
                module.compile(dynamic=False)
        return net
    return torch.compile(net, mode=mode, dynamic=False)


@contextmanager
def eager() -> Iterator[None]:
    """Run compiled modules eagerly inside (other shapes or modes than the training step's:
    validation, the checkpoint check), so they never trigger a recompile."""
    with torch.compiler.set_stance("force_eager"):
        yield
