"""Builders of tiny fake datasets in every layout, shared by the tests/test_data_*.py files.

Degraded images are the clean image plus a constant (``OFFSET``), so a test can check that a
degraded crop and its clean crop come from the same place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dfpir.data import write_image

OFFSET = 40  # degraded = clean + OFFSET (clean values stay below 256 - OFFSET)
HEIGHT, WIDTH = 40, 50


def clean_image(seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A textured uint8 image in [0, 255 - OFFSET) with a unique pattern per seed."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256 - OFFSET, (height, width, 3), dtype=np.uint8)


def write_pair(degraded: Path, clean: Path, seed: int, height: int = HEIGHT, width: int = WIDTH):
    image = clean_image(seed, height, width)
    write_image(clean, image)
    write_image(degraded, image + OFFSET)


def make_denoise(root: Path, count: int = 3, ext: str = ".png") -> Path:
    for index in range(count):
        write_image(root / f"img{index:03d}{ext}", clean_image(index))
    return root


def make_paired(
    root: Path, degraded_dir: str, clean_dir: str, count: int = 3, clean_prefix: str = ""
) -> Path:
    """root/<degraded_dir>/<name>.png + root/<clean_dir>/<clean_prefix><name>.png."""
    for index in range(count):
        name = f"rain-{index + 1}" if clean_prefix else f"{index:04d}"
        write_pair(
            root / degraded_dir / f"{name}.png",
            root / clean_dir / f"{clean_prefix}{name}.png",
            seed=100 + index,
        )
    return root


def make_derain_train(root: Path, count: int = 3) -> Path:
    return make_paired(root, "rainy", "gt", count, clean_prefix="no")


def make_derain_test(root: Path, count: int = 3) -> Path:
    return make_paired(root, "input", "target", count, clean_prefix="no")


def make_dehaze(root: Path, ids: int = 2, per_id: int = 2, test: bool = False) -> Path:
    """OTS (synthetic/<id>_<A>_<beta>.jpg + original/<id>.jpg) or SOTS (input/ + target/*.png)."""
    hazy_dir, clean_dir, clean_ext = (
        ("input", "target", ".png") if test else ("synthetic", "original", ".jpg")
    )
    for index in range(ids):
        image = clean_image(200 + index)
        write_image(root / clean_dir / f"{index + 1:04d}{clean_ext}", image)
        for version in range(per_id):
            beta = 0.04 * (version + 1)
            write_image(root / hazy_dir / f"{index + 1:04d}_0.8_{beta:.2f}.jpg", image + OFFSET)
    return root


def make_gopro_flat(root: Path, count: int = 3) -> Path:
    return make_paired(root, "blur", "sharp", count)


def make_gopro_nested(root: Path, sequences: int = 2, per_sequence: int = 2) -> Path:
    for seq in range(sequences):
        folder = root / f"GOPR03{seq}_07_00"
        for index in range(per_sequence):
            write_pair(
                folder / "blur" / f"{index:06d}.png",
                folder / "sharp" / f"{index:06d}.png",
                seed=300 + 10 * seq + index,
            )
    return root


def make_lol(root: Path, count: int = 3) -> Path:
    return make_paired(root, "low", "high", count)


def test_fixtures_build_every_layout(tmp_path: Path) -> None:
    make_denoise(tmp_path / "dn")
    make_derain_train(tmp_path / "dr")
    make_dehaze(tmp_path / "dh")
    make_gopro_nested(tmp_path / "gn")
    assert len(list((tmp_path / "dh" / "synthetic").iterdir())) == 4
