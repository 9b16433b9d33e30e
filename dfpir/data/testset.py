"""Test sets following the evaluation protocol.

Both images are centre-cropped to a multiple of 16, nothing is augmented, and denoising noise is
drawn from a generator seeded by (base seed, task, image name), so every run and every process
sees identical inputs whatever the iteration order. ``release_noise_states`` instead reproduces
the release's stream (``data.test_noise: release``): ``np.random.seed(0)`` once per test script,
then one ``np.random.randn`` draw per image in ``os.listdir`` order, the test sets one after the
other (sigma 15, then 25, then 50). Items are ``(degraded, clean, task, name)`` with float32 3xHxW tensors in [0, 1].
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DataError
from .io import image_header, read_image
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
        noise_states: dict[str, dict] | None = None,
    ) -> None:
        if not pairs:
            raise DataError(f"test set {name!r} has no images")
        self.name = name
        self.task = validate_task(task)
        self.pairs = list(pairs)
        self.seed = seed
        self.multiple = multiple
        self.sigma = noise_sigma(task) if task_family(task) == "denoise" else 0
        self.noise_states = noise_states  # image name -> RandomState state (release stream)

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
            if self.noise_states is not None:
                rng = np.random.RandomState()
                rng.set_state(self.noise_states[pair.name])
            else:
                rng = item_rng(self.seed, self.task, pair.name)
            degraded = add_gaussian_noise_uint8(clean, self.sigma, rng)
        return to_tensor(degraded), to_tensor(clean), self.task, pair.name


def listdir_order(pairs: Sequence[ImagePair]) -> list[ImagePair]:
    """``pairs`` in the order ``os.listdir`` gives their clean files (the release's test order);
    folders in the order their first image appears."""
    folders = list(dict.fromkeys(str(Path(p.clean).parent) for p in pairs))
    rank = {}
    for folder in folders:
        for index, name in enumerate(os.listdir(folder)):
            rank[os.path.join(folder, name)] = (folders.index(folder), index)
    return sorted(pairs, key=lambda p: rank[os.path.join(str(Path(p.clean).parent),
                                                         Path(p.clean).name)])


def release_noise_states(
    sets: Sequence[Sequence[ImagePair]], seed: int = 0, multiple: int = EVAL_MULTIPLE
) -> list[dict[str, dict]]:
    """The state of the release's noise stream before each image's draw, per test set.

    One ``RandomState(seed)`` for all ``sets`` (denoising test sets, in the order they are
    scored); within a set, images in ``os.listdir`` order, each drawing ``h * w * 3`` normals
    for its image cropped to ``multiple``. Images are not decoded: their headers give the size.
    """
    stream = np.random.RandomState(seed)
    plans: list[dict[str, dict]] = []
    for pairs in sets:
        plan: dict[str, dict] = {}
        for pair in listdir_order(pairs):
            height, width, _ = image_header(pair.clean)
            if multiple:
                height, width = height - height % multiple, width - width % multiple
            plan[pair.name] = stream.get_state(legacy=False)
            remaining = height * width * 3
            while remaining:  # advance in chunks, without keeping the draws
                step = min(remaining, 1 << 22)
                stream.standard_normal(step)
                remaining -= step
        plans.append(plan)
    return plans
