"""One check of every place a command writes to, made before any work: it exists as the right
kind (folder or file), can be written and has room for a probe file. Nothing is created: the
probe goes in the nearest existing folder and is deleted at once."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Literal

from .errors import OutputPlaceError

__all__ = ["check_output_place"]

#: The probe's size: enough that a full disk (or quota) refuses it.
PROBE_BYTES = 4096


def _nearest_existing(path: Path) -> Path:
    for place in (path, *path.parents):
        if place.exists() or place.is_symlink():
            return place
    return Path(".")


def check_output_place(path: str | os.PathLike, kind: Literal["dir", "file"], flag: str) -> Path:
    """Raise ``OutputPlaceError`` naming ``flag`` and ``path`` unless results can be written
    there: ``kind`` ``"dir"`` (a folder, made later if missing) or ``"file"`` (a file, maybe
    replaced). Returns the path."""
    path = Path(path)
    if kind == "dir" and path.exists() and not path.is_dir():
        raise OutputPlaceError(f"{flag} {path} is an existing file (or FIFO/device); expected "
                               "a folder")
    if kind == "file" and path.is_dir():
        raise OutputPlaceError(f"{flag} {path} is a folder; expected a file name")
    if kind == "file" and path.exists() and not path.is_file():
        raise OutputPlaceError(f"{flag} {path} is not a regular file; expected a file name")
    base = _nearest_existing(path if kind == "dir" else path.parent)
    if not base.is_dir():
        raise OutputPlaceError(f"{flag} {path}: {base} is a file, so nothing can be made under "
                               "it; choose another place")
    try:
        with tempfile.NamedTemporaryFile(dir=base, prefix=".dfpir_probe_") as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            why = "the disk (or quota) is full"
        elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            why = "it is read-only for you"
        else:
            why = err.strerror or str(err)
        raise OutputPlaceError(f"{flag} {path}: cannot write in {base}: {why}; choose another "
                               "place or free it") from None
    return path
