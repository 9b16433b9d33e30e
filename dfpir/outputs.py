"""One check of every place a command writes to, made before any work: it exists as the right
kind (folder or file), can be written and has room for a probe file. Nothing is created: the
probe goes in the nearest existing folder and is deleted at once."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from .errors import OutputPlaceError, OutputWriteError

__all__ = ["check_output_place", "writing_to"]

#: The errors of a write that a full disk (or quota) causes.
FULL = (errno.ENOSPC, errno.EDQUOT)

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
        if err.errno in FULL:
            why = "the disk (or quota) is full"
        elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            why = "it is read-only for you"
        else:
            why = err.strerror or str(err)
        raise OutputPlaceError(f"{flag} {path}: cannot write in {base}: {why}; choose another "
                               "place or free it") from None
    return path


@contextmanager
def writing_to(path: str | os.PathLike, flag: str) -> Iterator[None]:
    """Around the work that writes a command's results to ``path``: a disk (or quota) that
    fills up on the way is ``OutputWriteError`` naming ``flag``, the file and what was kept,
    not a traceback. Other errors pass unchanged."""
    try:
        yield
    except OSError as err:
        if isinstance(err, OutputPlaceError) or err.errno not in FULL:
            raise
        failed = f" writing {err.filename}" if err.filename else ""
        raise OutputWriteError(
            f"{flag} {path}: the disk (or quota) filled up{failed}; the files written before "
            "are kept. Free some space or choose another place, then run it again") from None
