"""Exceptions raised by the data pipeline.

All derive from ``DataError`` (a ``DfpirError`` and a ``ValueError``) so callers can catch one type; every message
names the file or folder at fault and, for folder layouts, what was expected there.
"""

from __future__ import annotations

from ..errors import DfpirError


class DataError(DfpirError, ValueError):
    """A problem with the data on disk or with a data configuration."""


class ImageReadError(DataError):
    """An image file that is missing, corrupt or in a format that cannot be decoded."""


class LayoutError(DataError):
    """A dataset folder that does not follow the expected layout (missing, empty, unpaired)."""
