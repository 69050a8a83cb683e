"""``intra_op_num_threads``: how many threads BLAS and onnxpy's own parallel kernels use.

A kernel facility (kernels may import it; the session sets the limit), so it lives on the
kernels' floor rather than in the runtime above them.

BLAS thread pools (OpenBLAS, MKL, BLIS) belong to the process, not to a session, so a limit
set here holds for every session until another session sets a different one; onnxruntime's
per-session pools have no equivalent in NumPy. ``kernels.blas`` sets them (and chooses one
thread for small products) without environment variables, which only work before the library
loads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from onnxpy.kernels.blas import set_blas_threads

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = [
    "in_parts",
    "apply_intra_op_threads",
    "intra_op_threads",
    "kernel_threads",
    "worker_pool",
]

_lock = threading.Lock()
_current: int | None = None
# Read once: os.cpu_count() asks the kernel each time (several microseconds).
_CORES = os.cpu_count() or 1


def intra_op_threads() -> int:
    """Threads a kernel may use: the last limit set, else the machine's cores."""
    return _current or _CORES


def apply_intra_op_threads(n: int) -> None:
    """Limit BLAS (and onnxpy's kernel pools) to ``n`` threads; ``n <= 0`` leaves the default."""
    global _current
    if n <= 0:
        return
    with _lock:
        set_blas_threads(n)  # also when n is unchanged: the count may have been moved since
        _current = n


# onnxpy's own parallel kernels (the tree ensembles today) share one pool of at most this
# many workers. A hand-off is not free: on the 2-vCPU test machine a task submitted to an
# idle worker and waited for took 58-65 us (the wake-up of a sleeping thread), and two
# threads making small NumPy calls pass the GIL between them at that price each time. So a
# kernel splits only work of a few hundred microseconds or more, in parts that each make
# few, large calls, and the calling thread takes one part itself.
_MAX_WORKERS = max(1, min(8, _CORES))
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def kernel_threads() -> int:
    """Threads one kernel call may split over: intra_op_threads(), at most the pool's size."""
    return min(intra_op_threads(), _MAX_WORKERS)


def worker_pool() -> ThreadPoolExecutor:
    """The process-wide pool of kernel worker threads, created on first use."""
    global _pool
    from concurrent.futures import ThreadPoolExecutor

    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_MAX_WORKERS, thread_name_prefix="onnxpy-kernel")
        return _pool


_R = TypeVar("_R")


def in_parts(n: int, parts: int, fn: Callable[[int, int], _R]) -> list[_R]:
    """``[fn(a, b) ...]`` over ``parts`` consecutive ranges of ``range(n)``: the first in the
    calling thread (one wake-up fewer), the others on ``worker_pool()``; results in order."""
    bounds = [n * k // parts for k in range(parts + 1)]
    jobs = [worker_pool().submit(fn, a, b) for a, b in zip(bounds[1:-1], bounds[2:])]
    first = fn(bounds[0], bounds[1])
    return [first, *(job.result() for job in jobs)]
