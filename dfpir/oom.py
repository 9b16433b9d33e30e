"""Out-of-memory errors in every form torch raises them."""

from __future__ import annotations

import torch

# torch.OutOfMemoryError (the caching allocator), and the RuntimeErrors of CUDA, cuDNN and
# cuBLAS when an allocation inside them fails
_OOM_TEXTS = ("out of memory", "cudnn_status_alloc_failed", "cublas_status_alloc_failed")


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is a device (or host allocator) out-of-memory error."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and any(t in str(err).lower() for t in _OOM_TEXTS)
