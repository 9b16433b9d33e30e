"""CPU memory allocator tuning."""

from __future__ import annotations

import ctypes


def keep_freed_memory() -> bool:
    """Stop glibc from handing large freed blocks back to the OS after every tensor (CPU only).

    Otherwise each big activation is a fresh mmap whose pages fault in again on every step,
    which adds tens of percent of system time and makes CPU timings depend on what ran before.
    Returns False where the C library has no ``mallopt`` (not glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 2**30)) and bool(
            libc.mallopt(m_trim_threshold, 2**31 - 1)
        )
    except (OSError, AttributeError):
        return False
