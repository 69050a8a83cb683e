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


def compiled(fn: Any) -> Any:
    """``numba.njit`` releasing the GIL, with IEEE arithmetic (no fast-math: results equal the
    NumPy path's) and the on-disk cache, or without the cache when no folder is writable."""
    from numba import njit

    options = dict(nogil=True, fastmath=False, boundscheck=False)
    try:
        return njit(cache=True, **options)(fn)
    except RuntimeError:  # numba found no writable cache location
        return njit(cache=False, **options)(fn)
