"""An optional decode-once cache: images stored as uint8 .npy files read back memory-mapped.

A 1280x720 GoPro PNG costs tens of milliseconds to decode, yet training uses one 128x128 crop of
it. With the cache, the first read decodes and saves the array; later reads map the .npy file so
a crop touches only the rows it needs. Cache files are keyed by the source's absolute path, size
and modification time, so an edited image is decoded again. Writes are atomic (temporary file
then rename), so several DataLoader workers may fill the cache at once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .io import read_image


class ImageCache:
    """Reads images through a folder of decoded uint8 HxWx3 .npy files."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.cache_dir = Path(cache_dir)

    def path_for(self, source: str | Path) -> Path:
        """The cache file of ``source`` (depends on its absolute path, size and mtime)."""
        source = Path(source).resolve()
        stat = source.stat()
        key = f"{source}|{stat.st_size}|{stat.st_mtime_ns}".encode()
        digest = hashlib.sha1(key).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}.npy"

    def store(self, source: str | Path) -> Path:
        """Decode ``source`` into the cache unless it is there already; returns the cache file."""
        target = self.path_for(source)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f"{target.stem}.{os.getpid()}.tmp.npy")
            np.save(temporary, read_image(source))
            os.replace(temporary, target)
        return target

    def load(self, source: str | Path) -> np.ndarray:
        """The image as a read-only memory-mapped uint8 HxWx3 array (decoded on first use)."""
        return np.load(self.store(source), mmap_mode="r")


class ImageLoader:
    """A picklable ``path -> uint8 HxWx3`` reader: through an ``ImageCache`` when ``cache_dir``
    is set, else ``read_image``. Arrays from the cache are read-only memory maps."""

    def __init__(self, cache_dir: str = "") -> None:
        self.cache = ImageCache(cache_dir) if cache_dir else None

    def __call__(self, path: str) -> np.ndarray:
        return self.cache.load(path) if self.cache is not None else read_image(path)


def fill_cache(paths: Iterable[str], cache_dir: str | Path, progress: bool = False) -> int:
    """Decode every image of ``paths`` into the cache; returns how many files it holds for them."""
    cache = ImageCache(cache_dir)
    unique = sorted(set(paths))
    iterator: Iterable[str] = unique
    if progress:
        from tqdm import tqdm

        iterator = tqdm(unique, desc="caching", unit="img")
    for path in iterator:
        cache.store(path)
    return len(unique)
