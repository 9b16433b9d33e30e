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
           "inductor_options", "resolve_compile_mode"]

CompileMode = Literal["none", "auto", "regional", "default", "reduce-overhead", "max-autotune"]
COMPILE_MODES: tuple[str, ...] = CompileMode.__args__

#: The repeated block classes that regional compilation compiles, each instance in place.
REGIONS = (TransformerBlock,)

#: Compiles one code object may hold before torch falls back to eager: the blocks' shapes
#: (levels x stages, about 10 for the paper's recipe) need more than torch's default 8.
RECOMPILE_LIMIT = 64


def resolve_compile_mode(mode: str | bool, device: torch.device) -> str:
    """The mode to run: ``auto`` is ``regional`` on CUDA (compile time bounded by the block
    shapes) and ``none`` elsewhere (on a CPU compiling costs a minute or more per stage, which
    short runs do not win back, see docs/speed.md); ``True``/``False`` are the old boolean
    form (``default``/``none``)."""
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
    options = inductor_options(mode, device)
    if mode == "regional":
        for module in model.modules():
            if isinstance(module, REGIONS):
                module.compile(dynamic=False, options=options)
        return net
    return torch.compile(net, dynamic=False, options=options)


def inductor_options(mode: str, device: torch.device) -> dict[str, object]:
    """Inductor's settings for ``mode`` (``torch.compile``'s own for its named modes), and on
    the CPU channels_last for every convolution of the backward graphs too.

    Inductor picks channels_last (oneDNN's fast layout) only for graphs that hold a forward
    convolution; in a backward graph it orders the depthwise convolutions' gradients by the
    weight's strides, which are ambiguous for a (C, 1, 3, 3) weight and give a mixed layout
    (C between H and W) that oneDNN runs 5-10x slower than channels_last (measured on an AMD
    EPYC: the warm regional step of a dim-16 model 8% slower than eager without this, 1.29x
    faster with it).
    The layout changes how values are stored, not the arithmetic's result beyond rounding.
    """
    from torch._inductor import list_mode_options

    options: dict[str, object] = dict(list_mode_options("default" if mode == "regional"
                                                        else mode))
    if device.type == "cpu":
        options["force_layout_optimization"] = True
    return options


@contextmanager
def eager() -> Iterator[None]:
    """Run compiled modules eagerly inside (other shapes or modes than the training step's:
    validation, the checkpoint check), so they never trigger a recompile."""
    with torch.compiler.set_stance("force_eager"):
        yield
