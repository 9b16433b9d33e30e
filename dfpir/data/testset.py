"""Test sets following the evaluation protocol.

Both images are centre-cropped to a multiple of 16, nothing is augmented, and denoising noise is
drawn from a generator seeded by (base seed, task, image name), so every run and every process
sees identical inputs whatever the iteration order (the release draws test noise unseeded).
Items are ``(degraded, clean, task, name)`` with float32 3xHxW tensors in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from .errors import DataError
from .io import read_image
from .layouts import ImagePair
from .tasks import noise_sigma, task_family, validate_task
from .transforms import add_gaussian_noise_uint8, crop_to_multiple, item_rng, to_tensor

EVAL_MULTIPLE = 16


class PairedTestSet(Dataset):
    """Full test images of one task; the degraded image of denoising is seeded noise."""

    def __init__(
        self,
        name: str,
        task: str,
        pairs: Sequence[ImagePair],
        seed: int = 0,
        multiple: int = EVAL_MULTIPLE,
    ) -> None:
        if not pairs:
            raise DataError(f"test set {name!r} has no images")
        self.name = name
        self.task = validate_task(task)
        self.pairs = list(pairs)
        self.seed = seed
        self.multiple = multiple
        self.sigma = noise_sigma(task) if task_family(task) == "denoise" else 0

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str, str]:
        pair = self.pairs[index]
        clean = read_image(pair.clean)
        if min(clean.shape[:2]) < self.multiple:
            raise DataError(
                f"test image {pair.clean} is {clean.shape[1]}x{clean.shape[0]}, smaller than the "
                f"{self.multiple}-pixel multiple the evaluation crops to"
            )
        if pair.degraded:
            degraded = read_image(pair.degraded)
            if degraded.shape != clean.shape:
                raise DataError(
                    f"pair of different sizes in test set {self.name!r}: {pair.degraded} is "
                    f"{degraded.shape[1]}x{degraded.shape[0]}, {pair.clean} is "
                    f"{clean.shape[1]}x{clean.shape[0]} (WxH)"
                )
            degraded = crop_to_multiple(degraded, self.multiple)
            clean = crop_to_multiple(clean, self.multiple)
        else:
            clean = crop_to_multiple(clean, self.multiple)
            rng = item_rng(self.seed, self.task, pair.name)
            degraded = add_gaussian_noise_uint8(clean, self.sigma, rng)
        return to_tensor(degraded), to_tensor(clean), self.task, pair.name
