"""A dataset that needs no download: scikit-image's bundled colour photographs, degraded with
``synthetic`` for every task.

Training items are random crops of the training photos with a fresh random degradation each
time (a few photos, so a fixed pre-degraded set would be memorised within minutes; degrading a
small crop costs about a millisecond). Test items are the full held-out photos, centre-cropped
to a multiple of 16, degraded once per (base seed, task, photo), hence identical in every run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DataError
from .synthetic import SyntheticConfig, degrade
from .tasks import noise_sigma, task_family, validate_task
from .trainset import TorchSeededRng
from .transforms import (
    add_gaussian_noise_uint8,
    augment,
    crop_to_multiple,
    item_rng,
    random_augmentation_mode,
    random_crop_origin,
    to_tensor,
)


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _motorcycle(index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return skimage.data.stereo_motorcycle()[index]

    return load


# The colour photographs shipped inside the scikit-image package (no pooch download needed).
BUILTIN_IMAGES: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"),
    "rocket": _skimage("rocket"),
    "hubble_deep_field": _skimage("hubble_deep_field"),
    "immunohistochemistry": _skimage("immunohistochemistry"),
    "retina": _skimage("retina"),
    "motorcycle_left": _motorcycle(0),
    "motorcycle_right": _motorcycle(1),
}


def load_builtin_image(name: str, max_side: int = 0) -> np.ndarray:
    """One bundled photo as uint8 HxWx3, optionally shrunk so its longer side is <= max_side."""
    if name not in BUILTIN_IMAGES:
        raise DataError(f"unknown built-in image {name!r}; available: {', '.join(BUILTIN_IMAGES)}")
    try:
        image = np.ascontiguousarray(BUILTIN_IMAGES[name]()[:, :, :3])
    except Exception as error:  # noqa: BLE001 - report which image could not be loaded
        raise DataError(
            f"cannot load built-in image {name!r} from scikit-image: {error}"
        ) from error
    if max_side and max(image.shape[:2]) > max_side:
        from skimage.transform import resize

        scale = max_side / max(image.shape[:2])
        shape = (round(image.shape[0] * scale), round(image.shape[1] * scale))
        image = np.round(resize(image, shape, anti_aliasing=True) * 255).astype(np.uint8)
    return image


def _window(img: np.ndarray, top: int, left: int, size: int, margin: int) -> np.ndarray:
    """The (size + 2 margin) square around a patch, reflect-padded where it leaves the image."""
    height, width = img.shape[:2]
    y0, y1 = top - margin, top + size + margin
    x0, x1 = left - margin, left + size + margin
    inner = img[max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)]
    pads = ((max(0, -y0), max(0, y1 - height)), (max(0, -x0), max(0, x1 - width)), (0, 0))
    if any(p for pair in pads for p in pair):
        mode = "reflect" if min(inner.shape[:2]) > 1 else "edge"
        inner = np.pad(inner, pads, mode=mode)
    return inner


class BuiltinTrainSet(Dataset):
    """Random crops of the built-in training photos with a fresh degradation of ``task``.

    ``preloaded`` (name -> image) lets several tasks share the decoded photos.
    """

    def __init__(
        self,
        task: str,
        image_names: Sequence[str],
        patch_size: int,
        synthetic: SyntheticConfig | None = None,
        preloaded: dict[str, np.ndarray] | None = None,
    ) -> None:
        if not image_names:
            raise DataError("the built-in training set needs at least one image name")
        self.task = validate_task(task)
        self.image_names = list(image_names)
        preloaded = preloaded or {}
        self.images = [
            preloaded[name] if name in preloaded else load_builtin_image(name)
            for name in self.image_names
        ]
        self.patch_size = patch_size
        self.synthetic = synthetic or SyntheticConfig()
        # context around the patch so blur and rain near its border come from real pixels
        self.margin = 0 if task_family(task) == "denoise" else self.synthetic.blur.kernel_size // 2
        self.rng = TorchSeededRng()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        return self.sample(index, self.rng.get())

    def sample(self, index: int, rng: np.random.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, str]:
        """Item ``index`` with its crop, augmentation and degradation drawn from ``rng``."""
        image = self.images[index]
        size, margin = self.patch_size, self.margin
        height, width = image.shape[:2]
        top, left = random_crop_origin(max(height, size), max(width, size), size, rng)
        mode = random_augmentation_mode(rng)
        if task_family(self.task) == "denoise":
            clean = augment(_window(image, top, left, size, 0), mode)
            degraded = add_gaussian_noise_uint8(clean, noise_sigma(self.task), rng)
            return to_tensor(degraded), to_tensor(clean), self.task
        window = _window(image, top, left, size, margin)
        region = (top - margin, left - margin, height, width)
        degraded_window = degrade(window, self.task, self.synthetic, rng, region=region)
        inner = (slice(margin, margin + size), slice(margin, margin + size))
        clean = augment(window[inner], mode)
        degraded = augment(degraded_window[inner], mode)
        return to_tensor(degraded), to_tensor(clean), self.task


class BuiltinTestSet(Dataset):
    """The held-out photos, centre-cropped to a multiple of 16, with a seeded degradation."""

    def __init__(
        self,
        task: str,
        image_names: Sequence[str],
        seed: int = 0,
        synthetic: SyntheticConfig | None = None,
        max_side: int = 0,
        multiple: int = 16,
    ) -> None:
        if not image_names:
            raise DataError("the built-in test set needs at least one image name")
        self.task = validate_task(task)
        self.name = f"builtin_{task}"
        self.image_names = list(image_names)
        self.images = [
            crop_to_multiple(load_builtin_image(n, max_side), multiple) for n in self.image_names
        ]
        self.seed = seed
        self.synthetic = synthetic or SyntheticConfig()

    def __len__(self) -> int:
        return len(self.images)

    def degraded_image(self, index: int) -> np.ndarray:
        """The uint8 degraded input of item ``index`` (the same in every run and process)."""
        rng = item_rng(self.seed, self.task, self.image_names[index])
        return degrade(self.images[index], self.task, self.synthetic, rng)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str, str]:
        degraded = self.degraded_image(index)
        return (
            to_tensor(degraded),
            to_tensor(self.images[index]),
            self.task,
            self.image_names[index],
        )
