"""Training sets: random aligned crops per task, and the release's mixed all-in-one epoch.

Items are ``(degraded, clean, task)``: float32 3xPxP tensors in [0, 1] and the task name.
After ``MixedTrainSet.set_epoch(seed, epoch)`` an item's randomness depends on (seed, epoch,
index) only, which makes resumed runs exact. Otherwise it comes from a numpy generator seeded
from ``torch.initial_seed()``, which PyTorch makes different in every DataLoader worker and every
epoch, so workers never repeat each other's crops even without ``seed_worker``.
"""

from __future__ import annotations

import bisect
import logging
import random
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import ImageLoader
from .errors import DataError, ImageReadError
from .layouts import ImagePair
from .tasks import noise_sigma, task_family, validate_task
from .transforms import (
    add_gaussian_noise_uint8,
    augment,
    crop_patch,
    crop_to_multiple,
    pad_to_size,
    random_augmentation_mode,
    random_crop_origin,
    stable_seed,
    to_tensor,
)

logger = logging.getLogger(__name__)

SMALL_IMAGE_POLICIES: tuple[str, ...] = ("pad", "skip")
_SKIP_ATTEMPTS = 32


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy's and Python's global generators from torch's
    per-worker seed, so code using ``np.random``/``random`` differs between workers."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


class TorchSeededRng:
    """A numpy generator re-seeded whenever ``torch.initial_seed()`` changes (new worker or
    new epoch's workers); picklable, and fresh in every process that unpickles it."""

    def __init__(self) -> None:
        self._seed: int | None = None
        self._generator: np.random.Generator | None = None

    def get(self) -> np.random.Generator:
        seed = torch.initial_seed()
        if self._generator is None or seed != self._seed:
            self._seed = seed
            self._generator = np.random.default_rng(seed)
        return self._generator

    def __getstate__(self) -> dict:
        return {"_seed": None, "_generator": None}


class TaskTrainSet(Dataset):
    """Random ``patch_size`` crops (same place in both images) with the release's augmentation.

    For denoising, ``pairs`` hold clean images only and the noise is added to the augmented
    clean crop on the uint8 scale. ``small_image_policy``: 'pad' reflect-pads images smaller
    than the patch, 'skip' replaces them by another random sample of the task, falling back to
    padding when none of 32 random tries is large enough (all logged; never an error).
    ``crop_multiple`` > 0 first centre-crops both images to a multiple of it, as the release's
    loaders do (16) before the random patch; images smaller than it are left whole.
    An image that turns out unreadable when loaded (a truncated JPEG passes the header-only
    check before training) is named in the log, counted and replaced by another random image
    of the task; only a task with no readable image in 32 tries stops the run.
    """

    def __init__(
        self,
        task: str,
        pairs: Sequence[ImagePair],
        patch_size: int,
        small_image_policy: str = "pad",
        cache_dir: str = "",
        crop_multiple: int = 0,
    ) -> None:
        if small_image_policy not in SMALL_IMAGE_POLICIES:
            raise DataError(
                f"small_image_policy must be one of {SMALL_IMAGE_POLICIES}, got {small_image_policy!r}"
            )
        if not pairs:
            raise DataError(f"task {task!r} has no training images")
        self.task = validate_task(task)
        self.is_denoise = task_family(task) == "denoise"
        self.sigma = noise_sigma(task) if self.is_denoise else 0
        self.pairs = list(pairs)
        self.patch_size = patch_size
        self.crop_multiple = int(crop_multiple)
        self.small_image_policy = small_image_policy
        self.load = ImageLoader(cache_dir)
        self.rng = TorchSeededRng()
        self._reported_small: set[str] = set()
        self.unreadable: set[str] = set()

    def __len__(self) -> int:
        return len(self.pairs)

    def _load_pair(self, pair: ImagePair) -> tuple[np.ndarray | None, np.ndarray]:
        clean = self.load(pair.clean)
        degraded = self.load(pair.degraded) if pair.degraded else None
        if degraded is not None and degraded.shape != clean.shape:
            raise DataError(
                f"pair of different sizes: {pair.degraded} is {degraded.shape[1]}x"
                f"{degraded.shape[0]}, {pair.clean} is {clean.shape[1]}x{clean.shape[0]} (WxH)"
            )
        m = self.crop_multiple
        if m > 0 and min(clean.shape[:2]) >= m:
            clean = crop_to_multiple(clean, m)
            degraded = None if degraded is None else crop_to_multiple(degraded, m)
        return degraded, clean

    def _too_small(self, clean: np.ndarray, pair: ImagePair) -> bool:
        small = min(clean.shape[:2]) < self.patch_size
        if small and pair.clean not in self._reported_small:
            self._reported_small.add(pair.clean)
            action = "reflect-padding it" if self.small_image_policy == "pad" else "skipping it"
            logger.warning(
                "%s is %dx%d, smaller than the %d patch: %s",
                pair.degraded or pair.clean,
                clean.shape[1],
                clean.shape[0],
                self.patch_size,
                action,
            )
        return small

    def _try_load(self, pair: ImagePair):
        """``(pair, degraded, clean)``, or ``None`` when one of its files cannot be read (logged
        the first time, with the count so far)."""
        try:
            return (pair, *self._load_pair(pair))
        except ImageReadError as err:
            if str(err) in self.unreadable:
                return None
            self.unreadable.add(str(err))  # the message names the file: logged once a file
            logger.warning("skipping an unreadable training image of task %r: %s (%d "
                           "unreadable so far in this data process)", self.task, err,
                           len(self.unreadable))
            return None

    def _readable(self, index: int, rng: np.random.Generator):
        """Item ``index``, or another random item of the task when it cannot be read."""
        picked = self._try_load(self.pairs[index])
        for _ in range(_SKIP_ATTEMPTS):
            if picked is not None:
                return picked
            picked = self._try_load(self.pairs[int(rng.integers(len(self.pairs)))])
        if picked is None:
            raise ImageReadError(
                f"task {self.task!r}: no readable training image in {_SKIP_ATTEMPTS + 1} tries; "
                f"unreadable: {'; '.join(sorted(self.unreadable)[:3])}")
        return picked

    def _pick(self, index: int, rng: np.random.Generator):
        pair, degraded, clean = self._readable(index, rng)
        if not self._too_small(clean, pair) or self.small_image_policy == "pad":
            return pair, degraded, clean
        first = (pair, degraded, clean)
        for _ in range(_SKIP_ATTEMPTS):
            pair, degraded, clean = self._readable(int(rng.integers(len(self.pairs))), rng)
            if not self._too_small(clean, pair):
                return pair, degraded, clean
        logger.warning(
            "task %r: no image of at least %dx%d in %d random tries (small_image_policy='skip'); "
            "reflect-padding %s instead",
            self.task,
            self.patch_size,
            self.patch_size,
            _SKIP_ATTEMPTS,
            first[0].clean,
        )
        return first

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        return self.sample(index, self.rng.get())

    def sample(self, index: int, rng: np.random.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, str]:
        """Item ``index`` with its crop, augmentation and noise drawn from ``rng``."""
        pair, degraded, clean = self._pick(index, rng)
        size = self.patch_size
        height, width = clean.shape[:2]
        if height < size or width < size:
            clean = pad_to_size(np.asarray(clean), size, size)
            degraded = None if degraded is None else pad_to_size(np.asarray(degraded), size, size)
            height, width = clean.shape[:2]
        top, left = random_crop_origin(height, width, size, rng)
        mode = random_augmentation_mode(rng)
        clean_patch = augment(crop_patch(clean, top, left, size), mode)
        if degraded is None:
            degraded_patch = add_gaussian_noise_uint8(clean_patch, self.sigma, rng)
        else:
            degraded_patch = augment(crop_patch(degraded, top, left, size), mode)
        return to_tensor(degraded_patch), to_tensor(clean_patch), self.task


class MixedTrainSet(Dataset):
    """The release's epoch: each task's sample list concatenated ``repeat`` times, in order.

    Index ``i`` falls in one task's block and maps to sample ``i mod len(task list)``; the
    DataLoader's shuffling mixes the tasks.
    """

    def __init__(self, parts: Sequence[tuple[Dataset, int]]) -> None:
        self.parts = [(dataset, int(repeat)) for dataset, repeat in parts if repeat > 0]
        self.epoch_seed: tuple[int, int] | None = None
        if not self.parts:
            raise DataError("the training set is empty: no task with a positive repeat factor")
        self.offsets: list[int] = []
        total = 0
        for dataset, repeat in self.parts:
            self.offsets.append(total)
            total += len(dataset) * repeat
        self.total = total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        if index < 0:
            index += self.total
        if not 0 <= index < self.total:
            raise IndexError(f"index {index} out of range for {self.total} samples")
        part = bisect.bisect_right(self.offsets, index) - 1
        dataset, _ = self.parts[part]
        local = (index - self.offsets[part]) % len(dataset)
        if self.epoch_seed is None:
            return dataset[local]
        return dataset.sample(local, np.random.default_rng(stable_seed(*self.epoch_seed, index)))

    def set_epoch(self, seed: int, epoch: int) -> None:
        """Draw every item's randomness from ``(seed, epoch, index)`` alone: the same samples in
        any worker, process or restart, so a resumed run continues exactly (call before each
        epoch's DataLoader iterator is created)."""
        self.epoch_seed = (int(seed), int(epoch))

    def task_counts(self) -> dict[str, int]:
        """Samples per task in one epoch (tasks appearing in several parts are summed)."""
        counts: dict[str, int] = {}
        for dataset, repeat in self.parts:
            task = dataset.task
            counts[task] = counts.get(task, 0) + len(dataset) * repeat
        return counts
