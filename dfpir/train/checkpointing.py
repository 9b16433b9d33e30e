"""Training checkpoints: written atomically, read with ``weights_only``, exported for release."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.checkpoint import read_checkpoint, release_checkpoint


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``: a
    crash mid-write never leaves a truncated checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_training_state(path: str | os.PathLike) -> dict:
    """A training checkpoint written by the trainer (``weights_only`` load)."""
    return read_checkpoint(path)


def export_weights(model: torch.nn.Module, out_dir: str | os.PathLike, epoch: int = 0
                   ) -> dict[str, Path]:
    """Write the weights in the release's checkpoint layout (.pth) and as safetensors."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    release = out_dir / "release_layout.pth"
    atomic_save(release_checkpoint(model, epoch), release)
    tensors = out_dir / "weights.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(tensors))
    return {"release": release, "safetensors": tensors}
