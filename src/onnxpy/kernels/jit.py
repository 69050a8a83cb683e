"""Compiled (numba) kernels: the one switch and the lazy import every kernel family shares.

numba is imported only when a kernel that pays for it is built (a session is created), never
at ``import onnxpy``: it costs ~0.5 s and ~100 MB resident (LLVM) once per process.
``ONNXPY_DISABLE_JIT=1`` (read once, at import) keeps every kernel on its NumPy path, which
each compiled path matches bit for bit.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

DISABLED = os.environ.get("ONNXPY_DISABLE_JIT", "").strip() not in ("", "0")
_loaded: dict[str, ModuleType | None] = {}


def load(name: str) -> ModuleType | None:
    """The compiled-kernel module ``name``, imported on first use; None when disabled, or
    without a numba that loads."""
    if DISABLED:
        return None
    if name not in _loaded:
        try:
            module: ModuleType | None = importlib.import_module(name)
        except (ImportError, OSError, RuntimeError):  # no numba, or one that cannot load
            module = None
        _loaded[name] = module
    return _loaded[name]


def compiled(fn: Any, parallel: bool = False) -> Any:
    """``numba.njit`` releasing the GIL, with IEEE arithmetic (no fast-math: results equal the
    NumPy path's) and the on-disk cache, or without the cache when no folder is writable.
    ``parallel``: ``prange`` loops run on numba's thread pool (see ``spinning_pool``)."""
    from numba import njit

    options = dict(nogil=True, fastmath=False, boundscheck=False, parallel=parallel)
    try:
        return njit(cache=True, **options)(fn)
    except RuntimeError:  # numba found no writable cache location
        return njit(cache=False, **options)(fn)


def spinning_pool() -> bool:
    """Whether numba's parallel loops run on a pool whose threads wait by spinning (the
    OpenMP or TBB layers: a parallel region of two threads costs ~2 us), which pays for
    loops of a few microseconds, and may be called from several threads at once. numba's
    own workqueue layer puts its threads to sleep (~60 us to wake one here) and must not be
    entered by two threads at once. Call after a parallel function has run once."""
    import numba

    if _forked:
        return False
    try:
        return numba.threading_layer() in ("omp", "tbb")
    except ValueError:  # no parallel function has run yet
        return False


def parallel_allowed() -> bool:
    """False in a process forked from one that may have started numba's thread pool: GNU
    OpenMP's pool does not survive a fork (a parallel region in the child can hang)."""
    return not _forked


_forked = False


def _mark_forked() -> None:
    global _forked
    _forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked)


def use_threads(n: int) -> int:
    """Let numba's parallel loops in this thread use ``n`` threads (at most its pool's
    size); returns the count set."""
    import numba

    n = max(1, min(n, numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)
    return n
