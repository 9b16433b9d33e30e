"""Which arithmetic the network uses where precision could change what it decides.

Two rules, whatever precision the rest of the model runs in (bf16/fp16 autocast, TF32):

- the DGM scores, whose descending order is the DGCPM's channel permutation, are computed in
  fp32 with autocast off and TF32 off (``full_fp32``): a rounded score is another order, and
  another order is another network (bf16 changed 229 of 384 positions of one DGPB);
- reductions over pixel positions (attention norms and logits) accumulate in fp32 and never
  form an unnormalised dot product in fp16, which overflows on large images.

``set_backend_precision`` is the one place that sets PyTorch's global TF32 and cuDNN switches;
training and evaluation call it with their config's values instead of inheriting whatever the
PyTorch version defaults to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["full_fp32", "low_precision", "set_backend_precision"]

_HALF = (torch.float16, torch.bfloat16)


def low_precision(x: torch.Tensor) -> bool:
    """Whether ``x`` is computed in 16 bits: a half/bfloat16 tensor or autocast on its device."""
    return x.dtype in _HALF or torch.is_autocast_enabled(x.device.type)


@contextlib.contextmanager
def full_fp32(device_type: str) -> Iterator[None]:
    """Autocast off and, on CUDA, fp32 matmuls in full fp32 (no TF32) inside the block; the
    previous TF32 setting is restored on the way out."""
    with torch.autocast(device_type, enabled=False):
        matmul = torch.backends.cuda.matmul
        if device_type != "cuda" or not matmul.allow_tf32:
            yield
            return
        matmul.allow_tf32 = False
        try:
            yield
        finally:
            matmul.allow_tf32 = True


def set_backend_precision(tf32: bool, cudnn_benchmark: bool) -> None:
    """Set PyTorch's global precision switches explicitly (not left to its version's defaults).

    ``tf32``: fp32 matmuls and cuDNN convolutions may use TF32 on Ampere and later (10-bit
    mantissa; faster, changes values by rounding only). ``cudnn_benchmark``: let cuDNN time its
    algorithms and keep the fastest per input shape (again rounding only; pays off with fixed
    training crops, not with the protocol's varying test sizes). The DGM scores ignore both
    (``full_fp32``).
    """
    # the long-standing flags: torch.export reads them, and mixing in the newer fp32_precision
    # API makes that read fail
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cudnn_benchmark
