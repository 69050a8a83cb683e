"""Per-thread work arrays carved from one reused buffer, for kernels' temporaries.

A fresh multi-megabyte temporary per call is a fresh mapping whose every page faults on first
write (costly, especially in a VM); the reused buffer is already mapped and often cached. The
arrays are valid until the next ``scratch`` call on the same thread, so a kernel may use them
only for temporaries that die before it returns.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import numpy as np
from numpy.typing import DTypeLike

_LOCAL = threading.local()
_ALIGN = 64


def scratch(*shapes: tuple[int, ...], dtype: DTypeLike | Sequence[DTypeLike]) -> list[np.ndarray]:
    """Uninitialized arrays of ``shapes``, 64-byte aligned, in ``dtype`` (one for all, or one
    per shape)."""
    if isinstance(dtype, (list, tuple)):
        dtypes = [np.dtype(d) for d in dtype]
    else:
        dtypes = [np.dtype(dtype)] * len(shapes)
    sizes = [
        -(-math.prod(sh) * dt.itemsize // _ALIGN) * _ALIGN
        for sh, dt in zip(shapes, dtypes, strict=True)
    ]
    total = sum(sizes) + _ALIGN
    buf = getattr(_LOCAL, "buf", None)
    if buf is None or buf.size < total:
        buf = np.empty(max(total, 2 * (0 if buf is None else buf.size)), dtype=np.uint8)
        _LOCAL.buf = buf
    start = -buf.ctypes.data % _ALIGN
    out = []
    for sh, dt, size in zip(shapes, dtypes, sizes, strict=True):
        n = math.prod(sh) * dt.itemsize
        out.append(buf[start : start + n].view(dt).reshape(sh))
        start += size
    return out
