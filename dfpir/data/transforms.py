"""Array operations shared by the training and test sets: crops, augmentation, noise, tensors.

All numpy images here are HxWxC (uint8 unless stated); tensors are float32 CxHxW in [0, 1].
"""

from __future__ import annotations

import zlib
from typing import TypeVar

import numpy as np
import torch

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)

# The release's augmentation: modes 1..7 of the eight symmetries of the square (0 = identity).
AUGMENTATION_MODES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)


def crop_to_multiple(img: ArrayOrTensor, multiple: int = 16) -> ArrayOrTensor:
    """Centre-crop so height and width are multiples of ``multiple`` (the evaluation protocol).

    Drops ``h % multiple`` rows with the smaller half on top (top = (h % multiple) // 2), and the
    same for columns. Accepts a numpy array laid out HxW or HxWxC (spatial axes first) or a
    torch tensor laid out CxHxW or NxCxHxW (spatial axes last). Returns a view.
    """
    if isinstance(img, torch.Tensor):
        height, width = img.shape[-2], img.shape[-1]
    else:
        height, width = img.shape[0], img.shape[1]
    drop_h, drop_w = height % multiple, width % multiple
    top, left = drop_h // 2, drop_w // 2
    rows = slice(top, height - drop_h + top)
    cols = slice(left, width - drop_w + left)
    if isinstance(img, torch.Tensor):
        return img[..., rows, cols]
    return img[rows, cols]


def pad_to_size(img: np.ndarray, min_height: int, min_width: int) -> np.ndarray:
    """Reflect-pad an HxW(xC) array at the bottom and right to at least the given size."""
    pad_h = max(0, min_height - img.shape[0])
    pad_w = max(0, min_width - img.shape[1])
    if pad_h == 0 and pad_w == 0:
        return img
    pads = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (img.ndim - 2)
    return np.pad(img, pads, mode="reflect" if min(img.shape[:2]) > 1 else "edge")


def random_crop_origin(
    height: int, width: int, patch_size: int, rng: np.random.Generator
) -> tuple[int, int]:
    """A uniformly random (top, left) for a patch that fits in a height x width image."""
    top = int(rng.integers(0, height - patch_size + 1))
    left = int(rng.integers(0, width - patch_size + 1))
    return top, left


def crop_patch(img: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """A contiguous copy of the size x size patch at (top, left); reads only those rows."""
    return np.ascontiguousarray(img[top : top + size, left : left + size])


def augment(img: np.ndarray, mode: int) -> np.ndarray:
    """The release's ``data_augmentation``: 0 identity, 1 flip up-down, 2 rot90, 3 rot90+flip,
    4 rot180, 5 rot180+flip, 6 rot270, 7 rot270+flip (rotations counter-clockwise)."""
    if not 0 <= mode <= 7:
        raise ValueError(f"augmentation mode must be in 0..7, got {mode}")
    out = np.rot90(img, k=mode // 2) if mode >= 2 else img
    if mode % 2 == 1:
        out = np.flipud(out)
    return np.ascontiguousarray(out)


def random_augmentation_mode(rng: np.random.Generator) -> int:
    """One of the seven non-identity modes, uniformly, as the release draws it."""
    return int(rng.integers(1, 8))


def add_gaussian_noise_uint8(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """The release's noise: clip(x + sigma * N(0, 1), 0, 255) cast to uint8 (truncation)."""
    noise = rng.standard_normal(img.shape)
    return np.clip(img.astype(np.float64) + noise * sigma, 0, 255).astype(np.uint8)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float32 3xHxW in [0, 1] (converted in numpy: torch's small-tensor ops
    can spin on busy CPUs inside DataLoader workers)."""
    chw = img.transpose(2, 0, 1).astype(np.float32)
    chw /= np.float32(255.0)
    return torch.from_numpy(chw)


def stable_seed(*parts: int | str) -> int:
    """A 64-bit seed from ints and strings that is the same in every process and run.

    Python's ``hash`` of a string changes per process; this uses CRC32 for strings and numpy's
    ``SeedSequence`` to mix the parts.
    """
    words = [zlib.crc32(p.encode("utf-8")) if isinstance(p, str) else int(p) for p in parts]
    return int(np.random.SeedSequence(words).generate_state(2, dtype=np.uint64)[0])


def item_rng(base_seed: int, task: str, name: str) -> np.random.Generator:
    """The generator for one test item, from the base seed, its task and its image name only,
    so it does not depend on iteration order, worker or process."""
    return np.random.default_rng(stable_seed(base_seed, task, name))
