"""A generated training root with the real sets' image sizes and formats, and the projected wall
time of the paper's recipes on the released sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import ExperimentConfig
from ..data import write_image

#: Training images in the released file lists (``data_dir/*`` of the DFPIR release):
#: BSD400 + WED (denoise), Rain100L train (derain), RESIDE OTS (dehaze), GoPro, LOL.
RELEASE_TRAIN_IMAGES: dict[str, int] = {
    "denoise": 5144, "derain": 200, "dehaze": 72135, "deblur": 2103, "lowlight": 485,
}


#: (height, width, format) of generated training images per family, as the real sets.
REAL_IMAGE_SIZES: dict[str, tuple[int, int, str]] = {
    "denoise": (321, 481, "png"),  # BSD400 / WED ~481x321
    "dehaze": (413, 550, "jpg"),  # RESIDE OTS ~550x413, JPEG
    "derain": (321, 481, "png"),  # Rain100L 481x321
    "deblur": (720, 1280, "png"),  # GoPro 1280x720
    "lowlight": (400, 600, "png"),  # LOL 600x400
}


def photo_like(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random image with fine texture (compresses roughly like a photo), uint8."""
    cell = max(4, min(height, width) // 16)
    coarse = rng.random((height // cell + 2, width // cell + 2, 3))
    smooth = np.kron(coarse, np.ones((cell, cell, 1)))[:height, :width]
    texture = rng.normal(0.0, 0.03, (height, width, 3))
    return (np.clip(smooth * 0.8 + 0.1 + texture, 0.0, 1.0) * 255).round().astype(np.uint8)


def write_data_root(root: str | Path, images: int, scale: float = 1.0, seed: int = 0
                    ) -> dict[str, str]:
    """Generate a five-task training root in the configs' layout (``Train/<Family>``) with the
    real sets' image sizes (times ``scale``) and formats; returns family -> folder."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    folders = {"denoise": "Train/Denoise", "derain": "Train/Derain", "dehaze": "Train/Dehaze",
               "deblur": "Train/Deblur", "lowlight": "Train/Lowlight"}
    for family, (h, w, ext) in REAL_IMAGE_SIZES.items():
        h, w = max(16, round(h * scale)), max(16, round(w * scale))
        base = root / folders[family]
        for i in range(images):
            clean = photo_like(rng, h, w)
            degraded = np.clip(clean.astype(np.int16) + rng.integers(-20, 21, clean.shape),
                               0, 255).astype(np.uint8)
            if family == "denoise":
                write_image(base / f"{i:04d}.{ext}", clean)
            elif family == "derain":
                write_image(base / "rainy" / f"rain-{i}.png", degraded)
                write_image(base / "gt" / f"norain-{i}.png", clean)
            elif family == "dehaze":
                write_image(base / "synthetic" / "part1" / f"{i:04d}_0.8_0.2.jpg", degraded)
                write_image(base / "original" / f"{i:04d}.jpg", clean)
            elif family == "deblur":
                write_image(base / "blur" / f"{i:06d}.png", degraded)
                write_image(base / "sharp" / f"{i:06d}.png", clean)
            else:
                write_image(base / "low" / f"{i}.png", degraded)
                write_image(base / "high" / f"{i}.png", clean)
    return folders


def recipe_projection(cfg: ExperimentConfig, seconds_per_sample: dict[int, float]) -> dict:
    """Projected wall time of ``cfg``'s stages on the released training sets.

    ``seconds_per_sample`` maps a patch size to measured seconds per training sample at that
    patch; other patch sizes are scaled by their pixel count from the nearest measured one.
    """
    samples = 0
    for task in cfg.data.train_tasks:
        family = task.task.split("_")[0]
        samples += RELEASE_TRAIN_IMAGES.get(family, 0) * task.repeat
    stages = []
    total = 0.0
    for stage in cfg.train.stages:
        iters = (samples // stage.batch_size) * stage.epochs
        if stage.max_iters:
            iters = min(iters, stage.max_iters)
        ref = min(seconds_per_sample, key=lambda p: abs(p - stage.patch_size))
        per_sample = seconds_per_sample[ref] * (stage.patch_size / ref) ** 2
        hours = iters * stage.batch_size * per_sample / 3600
        total += hours
        stages.append({"stage": stage.name, "epochs": stage.epochs, "batch": stage.batch_size,
                       "patch": stage.patch_size, "iterations": iters,
                       "hours": round(hours, 2)})
    return {"recipe": cfg.name, "samples_per_epoch": samples, "stages": stages,
            "hours": round(total, 2)}

