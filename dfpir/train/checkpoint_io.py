"""Training checkpoints: written atomically, read with ``weights_only``, exported for release."""

from __future__ import annotations

import errno
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.checkpoint import (
    CheckpointError,
    check_finite,
    read_checkpoint,
    release_checkpoint,
)
from ..outputs import replaced
from .errors import CheckpointWriteError


def atomic_save(obj: Any, path: str | os.PathLike, go_on: str = "run the command again"
                ) -> None:
    """``torch.save`` to a temporary file in the same folder, flushed to disk, then renamed over
    ``path`` (``outputs.replaced``): a crash mid-write never leaves a truncated checkpoint
    behind. A failed write (disk full, ...) raises ``CheckpointWriteError`` and leaves the
    previous ``path`` as it was; its message ends with ``go_on``, the caller's advice on how to
    go on after freeing space."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replaced(path, durable=True) as tmp:
            torch.save(obj, tmp)
    except (OSError, RuntimeError) as err:  # torch reports a short write as a RuntimeError
        raise CheckpointWriteError(_write_failure(path, err, go_on)) from err


def _write_failure(path: Path, err: BaseException, go_on: str) -> str:
    free = ""
    try:
        free_bytes = shutil.disk_usage(path.parent).free
        free = f" ({free_bytes / 2**20:.0f} MiB free there)"
    except OSError:
        free_bytes = None
    full = (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)
            or (free_bytes is not None and free_bytes < 2**20))
    reason = "the disk (or quota) is full" if full else f"{type(err).__name__}: {err}"
    kept = f"; the previous {path.name} is intact" if path.exists() else ""
    return f"cannot write checkpoint {path}: {reason}{free}{kept}. Free some space, then {go_on}"


def rng_state() -> dict:
    """The states of Python's, numpy's and torch's generators, as tensors and plain values so
    that ``weights_only`` loading accepts them."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():  # this process's device only: any number of GPUs may resume
        state["cuda_device"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if not torch.cuda.is_available():
        return
    if "cuda_device" in state:
        torch.cuda.set_rng_state(state["cuda_device"])
    elif state.get("cuda"):  # older checkpoints: every device's state; ours is the first
        torch.cuda.set_rng_state(state["cuda"][0])


def load_training_state(path: str | os.PathLike) -> dict:
    """A training checkpoint written by the trainer (``weights_only`` load); one with
    non-finite weights is refused (``CheckpointError`` naming the parameters)."""
    state = read_checkpoint(path)
    if not isinstance(state.get("model"), dict) or "progress" not in state:
        raise CheckpointError(f"{path} is not a training checkpoint of this trainer (no "
                              "'model' and 'progress')")
    check_finite(state["model"], str(path))
    return state


#: What ``export_weights`` writes into its folder.
EXPORT_FILES = ("release_layout.pth", "weights.safetensors")


def export_weights(model: torch.nn.Module, out_dir: str | os.PathLike, epoch: int = 0
                   ) -> dict[str, Path]:
    """Write the weights in the release's checkpoint layout (.pth) and as safetensors."""
    from safetensors.torch import save_file

    state = model.state_dict()
    check_finite(state, "to export")  # never export weights that restore nothing
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    release = out_dir / EXPORT_FILES[0]
    atomic_save(release_checkpoint(model, epoch), release)
    tensors = out_dir / EXPORT_FILES[1]
    with replaced(tensors) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    return {"release": release, "safetensors": tensors}
