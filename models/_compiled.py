"""Helpers for the package's own compiled (numba) PyTensor Ops."""

from __future__ import annotations

import hashlib
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
