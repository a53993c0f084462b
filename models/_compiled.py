"""Helpers for the package's own compiled (numba) code: PyTensor Op caches and CPUs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def source_salt(path: str | Path) -> int:
    """Return a cache salt that changes whenever the source file at ``path`` changes.

    PyTensor keys its on-disk cache of a compiled Op on the Op's class and props,
    not on its code, so after an edit the old compiled kernel would keep loading.
    Returning this salt from the Op's numba funcify makes every edit of the
    kernel's module a new cache entry.
    """
    digest = hashlib.sha256(Path(path).read_bytes()).digest()
    return int.from_bytes(digest[:6], "big")


def usable_cpus() -> int:
    """Return the number of CPUs this process may run on (its affinity mask where known)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
