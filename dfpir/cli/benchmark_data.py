"""``dfpir benchmark_data`` (``scripts/benchmark_data.py``): training-crop throughput with and without the decode cache, on generated GoPro-sized frames.

    python scripts/benchmark_data.py [--images 8] [--samples 200] [--patch 128]

Writes 1280x720 PNG pairs (flattened GoPro layout) to a temporary folder, then times
``TaskTrainSet('deblur')`` item reads: straight from PNG, while filling the cache (first read of
each image), and from the filled cache. Prints samples per second as a table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data import TaskTrainSet, find_pairs, write_image
from .common import int_in, run_cli


def photo_like(rng: np.random.Generator, height: int = 720, width: int = 1280) -> np.ndarray:
    """A smooth random image with fine texture: compresses in PNG roughly like a photo."""
    coarse = rng.random((height // 40 + 2, width // 40 + 2, 3))
    smooth = np.kron(coarse, np.ones((40, 40, 1)))[:height, :width]
    texture = rng.normal(0.0, 0.03, (height, width, 3))
    return np.clip(smooth * 0.8 + 0.1 + texture, 0.0, 1.0)


def write_frames(root: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for index in range(count):
        sharp = photo_like(rng)
        blur = np.clip(sharp + rng.normal(0.0, 0.02, sharp.shape), 0.0, 1.0)
        write_image(root / "sharp" / f"{index:06d}.png", sharp)
        write_image(root / "blur" / f"{index:06d}.png", blur)


def samples_per_second(dataset: TaskTrainSet, samples: int) -> float:
    start = time.perf_counter()
    for index in range(samples):
        dataset[index % len(dataset)]
    return samples / (time.perf_counter() - start)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The options of ``dfpir benchmark_data`` / ``scripts/benchmark_data.py``."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Training-crop throughput with and without the decode cache, on "
                               "generated GoPro-sized frames.")
    parser.add_argument("--images", type=int_in(1, 1000), default=8,
                        help="frame pairs to generate")
    parser.add_argument("--samples", type=int_in(1), default=200, help="crops to time per mode")
    parser.add_argument("--patch", type=int_in(8, 720), default=128,
                        help="crop size (at most the 720 px frame height)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Time the three read modes and print the table."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root, cache_dir = Path(tmp) / "gopro", Path(tmp) / "cache"
        write_frames(root, args.images)
        pairs = find_pairs("deblur", [str(root)])
        plain = TaskTrainSet("deblur", pairs, args.patch)
        cached = TaskTrainSet("deblur", pairs, args.patch, cache_dir=str(cache_dir))
        rows = [("PNG decode (no cache)", samples_per_second(plain, args.samples))]
        rows.append(("cache, first read (fill)", samples_per_second(cached, len(pairs))))
        rows.append(("cache, filled (mmap .npy)", samples_per_second(cached, args.samples)))
        png_bytes = sum(p.stat().st_size for p in root.rglob("*.png"))
        npy_bytes = sum(p.stat().st_size for p in cache_dir.rglob("*.npy"))
    print(
        f"{args.images} pairs of 1280x720 PNGs ({png_bytes / 2**20:.1f} MiB; cache "
        f"{npy_bytes / 2**20:.1f} MiB), {args.patch}x{args.patch} crops, one process"
    )
    print(f"{'mode':28s} {'samples/s':>10s} {'ms/sample':>10s}")
    for name, rate in rows:
        print(f"{name:28s} {rate:10.1f} {1000.0 / rate:10.2f}")
    print(f"speed-up of the filled cache: x{rows[2][1] / rows[0][1]:.1f}")
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``dfpir benchmark_data``."""
    return run_cli(build_parser(prog), run, argv)
