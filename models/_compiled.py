"""Helpers for the package's own compiled (numba) code: Op caches, CPUs, threads."""

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


def threadsafe_layer(owner: str) -> str:
    """Start numba's threading layer as a thread-safe one (OpenMP or TBB), or raise.

    The package's threaded passes run inside nutpie's chains, which call them
    from several threads at once; numba's fallback layer (``workqueue``) aborts
    the process when that happens. Unless the user chose a layer
    (``NUMBA_THREADING_LAYER``), the layer is started as ``"threadsafe"``;
    once started, numba keeps it for the life of the process. Returns the
    layer's name.

    Raises
    ------
    RuntimeError
        When no thread-safe layer can be loaded, or another one already runs;
        the message says what to do (install ``tbb``, or use one thread).
    """
    import numba
    from numba.np.ufunc import parallel

    advice = ("Install TBB (pip install tbb) or OpenMP (libgomp; on macOS, llvm-openmp), "
              "or use threads=1.")
    chose = numba.config.THREADING_LAYER
    if not parallel._is_initialized and chose == "default":
        numba.config.THREADING_LAYER = "threadsafe"
    try:
        parallel._launch_threads()
    except (ValueError, ImportError, OSError) as err:
        if not parallel._is_initialized:
            numba.config.THREADING_LAYER = chose
        raise RuntimeError(f"{owner}: threads above 1 need a thread-safe numba threading "
                           f"layer (OpenMP or TBB), and none could be loaded ({err}). "
                           f"{advice}") from err
    layer = numba.threading_layer()
    if layer not in ("omp", "tbb"):
        raise RuntimeError(f"{owner}: threads above 1 need a thread-safe numba threading "
                           f"layer (OpenMP or TBB); this process already runs {layer!r}, "
                           "which aborts when several threads call it at once (started "
                           "before, or chosen by NUMBA_THREADING_LAYER). " + advice)
    return layer
