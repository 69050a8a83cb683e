"""``intra_op_num_threads``: how many threads BLAS and onnxpy's own parallel kernels use.

A kernel facility (kernels may import it; the session sets the limit), so it lives on the
kernels' floor rather than in the runtime above them.

BLAS thread pools (OpenBLAS, MKL, BLIS) belong to the process, not to a session, so a limit
set here holds for every session until another session sets a different one; onnxruntime's
per-session pools have no equivalent in NumPy. threadpoolctl finds and sets them without
environment variables, which only work before the library loads.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = [
    "apply_intra_op_threads",
    "one_blas_thread",
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
    from threadpoolctl import threadpool_limits

    with _lock:
        if _current != n:
            threadpool_limits(limits=n, user_api="blas")
            _current = n


class _OneBlasThread:
    """Context manager: BLAS on one thread inside, the previous limit restored after.

    For loops of small products (a recurrent layer's per-step [B, H] x [H, G*H] GEMV): OpenBLAS
    splits even those over its threads, and when the cores are shared the hand-offs dominate.
    The zoo's LSTM tagger at 2 threads on the loaded 2-core machine: 83-124 ms a run, 16-23 ms
    with its time loops on one thread (onnxruntime ~7-12 ms); on an idle machine a GEMV of that
    size gains nothing from a second thread. Entering costs ~13 us. Sections may overlap across
    threads: the first to enter sets one thread, the last to leave restores the limit.
    Measured limit: NumPy's OpenBLAS (scipy-openblas 0.3.31) honours the change only when it is
    made on the main thread; from a worker thread (a server's request threads) it is a no-op,
    so such runs keep the process-wide limit (nothing is lost, nothing gained).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._limiter = None
        self._controller = None

    def __enter__(self) -> None:
        with self._lock:
            self._depth += 1
            if self._depth == 1 and intra_op_threads() > 1:
                if self._controller is None:
                    from threadpoolctl import ThreadpoolController

                    self._controller = ThreadpoolController()
                self._limiter = self._controller.limit(limits=1, user_api="blas")

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._limiter is not None:
                self._limiter.restore_original_limits()
                self._limiter = None


one_blas_thread = _OneBlasThread()


# onnxpy's own parallel kernels (the tree ensembles today) share one pool of at most this
# many workers.
_MAX_WORKERS = max(1, min(8, _CORES))
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def kernel_threads() -> int:
    """Threads one kernel call may split over: intra_op_threads(), at most the pool's size."""
    return min(intra_op_threads(), _MAX_WORKERS)


def worker_pool() -> ThreadPoolExecutor:
    """The process-wide pool of kernel worker threads, created on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_MAX_WORKERS, thread_name_prefix="onnxpy-kernel")
        return _pool
