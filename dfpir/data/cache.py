"""An optional decode-once cache: images stored as uint8 .npy files read back memory-mapped.

A 1280x720 GoPro PNG costs tens of milliseconds to decode, yet training uses one 128x128 crop of
it. With the cache, the first read decodes and saves the array; later reads map the .npy file so
a crop touches only the rows it needs. Cache files are keyed by the source's absolute path, size
and modification time, so an edited image is decoded again. Writes are atomic (temporary file
then rename), so several DataLoader workers may fill the cache at once.

The cache is only a speed-up: a write that fails (a full disk or quota, a read-only folder)
removes its partial file and raises ``CacheWriteError``; ``ImageLoader`` then says so once and
goes on decoding without caching, so a full disk never ends a training run.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import OutputWriteError
from .io import read_image

logger = logging.getLogger(__name__)


class CacheWriteError(OutputWriteError):
    """A decoded image that could not be written to the cache (full disk, read-only, ...)."""


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
        """Decode ``source`` into the cache unless it is there already; returns the cache file.
        A write that fails leaves no partial file and raises ``CacheWriteError``."""
        target = self.path_for(source)
        if not target.is_file():
            self.decode_into(source, target)
        return target

    def decode_into(self, source: str | Path, target: Path) -> None:
        """Decode ``source`` into its cache file ``target`` (``path_for``)."""
        image = read_image(source)
        temporary = target.with_name(f"{target.stem}.{os.getpid()}.tmp.npy")
        made = not target.parent.is_dir()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            np.save(temporary, image)
            os.replace(temporary, target)
        except OSError as err:
            temporary.unlink(missing_ok=True)
            if made:  # the sub-folder this call made, when still empty
                with contextlib.suppress(OSError):
                    target.parent.rmdir()
            # numpy's short write ("N requested and M written") carries no errno
            full = err.errno in (errno.ENOSPC, errno.EDQUOT) or "requested and" in str(err)
            why = "the disk (or quota) is full" if full else (err.strerror or str(err))
            raise CacheWriteError(f"cannot write the decode cache {self.cache_dir}: {why} "
                                  f"(writing {target.name})") from None

    def load(self, source: str | Path) -> np.ndarray:
        """The image as a read-only memory-mapped uint8 HxWx3 array (decoded on first use)."""
        return np.load(self.store(source), mmap_mode="r")


class ImageLoader:
    """A picklable ``path -> uint8 HxWx3`` reader: through an ``ImageCache`` when ``cache_dir``
    is set, else ``read_image``. Arrays from the cache are read-only memory maps. When the cache
    cannot be written, the loader says so once (in each loader process) and stops adding to it;
    images already cached are still read from it."""

    def __init__(self, cache_dir: str = "") -> None:
        self.cache = ImageCache(cache_dir) if cache_dir else None
        self.writing = True
        # the loader processes of one run say it once: the first to make this marker does
        # (one per process that built the loaders and cache folder; removed when it exits)
        key = hashlib.sha1(str(Path(cache_dir).absolute()).encode()).hexdigest()[:12]
        self.said = Path(tempfile.gettempdir()) / f"dfpir_cache_full_{os.getpid()}_{key}"
        if self.cache is not None:
            atexit.register(self.said.unlink, missing_ok=True)

    def __call__(self, path: str) -> np.ndarray:
        if self.cache is None:
            return read_image(path)
        if self.writing:
            try:
                return self.cache.load(path)
            except CacheWriteError as err:
                self.writing = False
                if self._first_to_say():
                    logger.warning("warning: %s; going on without adding to the cache (data."
                                   "cache_dir), which only costs decoding time", err)
        target = self.cache.path_for(path)
        return np.load(target, mmap_mode="r") if target.is_file() else read_image(path)

    def _first_to_say(self) -> bool:
        try:
            os.close(os.open(self.said, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        except OSError:
            pass  # no marker to be had: say it
        return True


def fill_cache(paths: Iterable[str], cache_dir: str | Path, progress: bool = False
               ) -> tuple[int, int]:
    """Decode every image of ``paths`` into the cache; returns (files written now, files it
    held already). Raises ``CacheWriteError`` (the partial file removed) when the cache cannot
    be written."""
    cache = ImageCache(cache_dir)
    unique = sorted(set(paths))
    iterator: Iterable[str] = unique
    if progress:
        from tqdm import tqdm

        iterator = tqdm(unique, desc="caching", unit="img")
    held = 0
    for path in iterator:
        target = cache.path_for(path)  # a stat and a hash: once an image
        if target.is_file():
            held += 1
        else:
            cache.decode_into(path, target)
    return len(unique) - held, held
