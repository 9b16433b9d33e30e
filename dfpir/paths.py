"""What is wrong with a path the user gave as a file to read, in words: one wording for every
command (a folder or a FIFO is not called missing); and file names listed in a note."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

__all__ = ["not_a_file", "some_names"]


def not_a_file(path: str | os.PathLike) -> str | None:
    """``None`` for a regular file (or a link to one), else why it cannot be read as one:
    "does not exist", "is a folder, not a file" or "is not a regular file (...)"."""
    try:
        mode = Path(path).stat().st_mode
    except FileNotFoundError:
        return "does not exist"
    except NotADirectoryError:
        return "does not exist (a part of its path is a file)"
    except PermissionError:
        return "cannot be read (permission denied)"
    except OSError as err:  # ELOOP: a link that leads back to itself; others in words
        if err.errno == errno.ELOOP:
            return "is a symbolic link that loops (it never reaches a file)"
        return f"cannot be read ({err.strerror or err})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device")
    return f"is not a regular file ({kind})"


def some_names(names: Sequence[str], shown: int = 5) -> str:
    """The first ``shown`` of ``names`` for a note, and "..." when there are more."""
    return ", ".join(names[:shown]) + (" ..." if len(names) > shown else "")
