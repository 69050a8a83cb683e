"""How many threads NumPy's BLAS uses, chosen per matrix product.

OpenBLAS splits every product above a small size over all of its threads, and the threads
wait for one another by spinning. When the cores are shared (other processes, or a server
running several sessions at once), a product split over two threads waits until the second
one is scheduled. On the shared 2-core machine, a [64, 784] x [784, 512] product took 0.3-0.6 ms
on one or two threads while the cores were free, and 12-45 ms on two threads while two other
processes kept them busy (one thread: 0.6-1.9 ms); BERT-base at 2 threads took 0.6-3.8 s a run
there instead of 0.18 s. Hence, in kernels that call ``matmul`` below:

- products under ``SMALL_PRODUCT`` multiply-adds run on one thread (a second thread saves
  microseconds and risks milliseconds);
- larger products run on the session's ``intra_op_num_threads`` while that pays: each size
  is timed on one thread the second time it runs (the first time, usually a fresh process's
  first run, it runs as the recent products ran), every multi-threaded product is timed
  against it, and when most recent ones took longer than one thread would have, products run
  on one thread, with a multi-threaded probe now and then (at growing intervals while probes
  keep losing) to notice when the cores are free again (``_Chooser``).

The count is set by calling NumPy's OpenBLAS directly (ctypes, ~3 us a change, made only when
it differs from the last one set), which works from any thread (threadpoolctl changes limits
only from the first thread that set one). The library is the OpenBLAS file in
``/proc/self/maps`` (threadpoolctl's scan where that file does not exist). With another BLAS
(MKL, BLIS, Accelerate) nothing is switched: the process-wide limit, set through
threadpoolctl, holds for every product.

``matmul_accumulate`` computes ``C += A @ B`` in one call of that OpenBLAS's cblas_sgemm or
cblas_dgemm with beta = 1 (found with the same symbol prefix and suffix, its integer width
from the build's configuration string), which NumPy's matmul cannot; other BLAS builds and
dtypes fall back to a product and an add.

The count belongs to the process: a product may run on the count a concurrent run chose
(never a different result, only a different speed); products that do not go through
``matmul`` run on the count last set.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections import deque
from time import perf_counter

import numpy as np

__all__ = [
    "SMALL_PRODUCT",
    "accumulates",
    "blas_switchable",
    "fit_blas_threads",
    "matmul",
    "matmul_accumulate",
    "set_blas_threads",
]

# Products below this many multiply-adds (m * k * n of one BLAS call) run on one thread.
# Measured on the zoo at 2 threads, cores free: with 1 << 20 (BERT's attention products stay
# multi-threaded) MLP, GPT-2, ResNet-50 and BERT ran as fast as with every product on two
# threads; with 1 << 22 ResNet-50 and BERT took 5-15 % longer.
SMALL_PRODUCT = 1 << 20
# OpenBLAS itself keeps GEMVs under 2304 * GEMM_MULTITHREAD_THRESHOLD (4) multiply-adds (GEMMs
# under 65536 * 4) on one thread: no switch is needed for those.
_OWN_SINGLE = 2304 * 4

_lock = threading.Lock()
_floor = _OWN_SINGLE  # smallest product that may need a switch (sys.maxsize: never)
_setter = None  # OpenBLAS's set_num_threads, once found
_resolved = False
_limit = 0  # threads for large products (0: not known yet)
_now = 0  # the count last set (0: not known)
_gemms: dict[np.dtype, object] = {}  # dtype -> OpenBLAS's cblas_?gemm (C += A @ B), once found


def _find_openblas() -> str | None:
    """Path of the OpenBLAS NumPy loaded (from this process's memory map), or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {ln.split(None, 5)[-1].strip() for ln in f if "openblas" in ln.lower()}
    except OSError:
        return _find_with_threadpoolctl()
    paths = {p for p in paths if p.startswith("/") and ".so" in p}
    if len(paths) > 1:  # SciPy's own OpenBLAS may be loaded too: NumPy's sits beside numpy
        root = os.path.dirname(os.path.dirname(np.__file__))
        paths = {p for p in paths if p.startswith(root) and "numpy" in p} or paths
    return paths.pop() if len(paths) == 1 else None


def _find_with_threadpoolctl() -> str | None:
    from threadpoolctl import threadpool_info

    found = [i["filepath"] for i in threadpool_info() if i.get("internal_api") == "openblas"]
    return found[0] if len(found) == 1 else None


def _resolve() -> None:
    """Find OpenBLAS's set/get functions (whatever symbol prefix and suffix the build uses)."""
    global _setter, _resolved, _limit, _now, _floor
    _resolved = True
    _floor = sys.maxsize  # until a setter is found
    _gemms.clear()
    path = _find_openblas()
    if path is None:
        return
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return
    for prefix in ("", "scipy_"):
        for suffix in ("", "64_", "_64"):
            setter = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                _now = int(getter())
                if _limit == 0:
                    _limit = _now
                _setter = setter
                _floor = _OWN_SINGLE
                _find_gemms(lib, prefix, suffix)
                return


def _find_gemms(lib: ctypes.CDLL, prefix: str, suffix: str) -> None:
    """OpenBLAS's cblas_sgemm / cblas_dgemm, with the integer width the build was made with
    (64-bit where its configuration says USE64BITINT, as NumPy's own OpenBLAS does)."""
    config = getattr(lib, f"{prefix}openblas_get_config{suffix}", None)
    if config is None:
        return
    config.argtypes, config.restype = [], ctypes.c_char_p
    index = ctypes.c_int64 if b"USE64BITINT" in (config() or b"") else ctypes.c_int
    ptr = ctypes.c_void_p
    for dtype, name, scalar in (
        (np.float32, "sgemm", ctypes.c_float),
        (np.float64, "dgemm", ctypes.c_double),
    ):
        gemm = getattr(lib, f"{prefix}cblas_{name}{suffix}", None)
        if gemm is None:
            continue
        # (order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
        gemm.argtypes = [ctypes.c_int] * 3 + [index] * 3 + [scalar, ptr, index, ptr, index]
        gemm.argtypes += [scalar, ptr, index]
        gemm.restype = None
        _gemms[np.dtype(dtype)] = gemm


def blas_switchable() -> bool:
    """True when NumPy's BLAS is an OpenBLAS whose thread count can be set per product."""
    with _lock:
        if not _resolved:
            _resolve()
        return _setter is not None


def set_blas_threads(n: int) -> None:
    """Large products run on up to ``n`` threads from now on (intra_op_num_threads).

    Sets the count right away, from any thread; without a switchable OpenBLAS, sets the
    process-wide limit of every BLAS through threadpoolctl instead.
    """
    global _limit, _now
    with _lock:
        if not _resolved:
            _resolve()
        unchanged, _limit = _limit == n, n
        if _setter is not None:
            _setter(n)
            _now = n
            return
        if unchanged:
            return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")


def fit_blas_threads(macs: int) -> None:
    """Before products that do not go through ``matmul`` (a recurrent layer's time loop):
    one thread under ``SMALL_PRODUCT`` multiply-adds each, else the session's count."""
    if macs < _floor:
        return
    want = 1 if macs < SMALL_PRODUCT else _limit
    if want != _now:
        _switch(want)


def _switch(want: int) -> None:
    global _now
    with _lock:
        if not _resolved:
            _resolve()
            if want == 0:
                want = _limit
        if _setter is None or want == 0 or want == _now:
            return
        _setter(want)
        _now = want


class _Chooser:
    """Whether large products run multi-threaded now, from how the recent ones fared.

    ``single`` holds each product size's recent one-thread time (a running average, so it
    follows a slower machine too); ``excess`` the last few multi-threaded products' times
    over that. The median of ``excess`` below 1 means the extra threads pay.
    """

    WINDOW = 9
    FIRST_GAP = 8  # large products between probes, doubled while probes lose
    MAX_GAP = 256
    MAX_SIZES = 4096  # forget every size past this many (shapes that change run after run)

    def __init__(self) -> None:
        self.single: dict[int, float] = {}
        self.seen: set[int] = set()  # sizes run once, their one-thread time not yet learnt
        self.excess: deque[float] = deque(maxlen=self.WINDOW)
        self.multi = True
        self.count = 0
        self.gap = self.FIRST_GAP
        self.next_probe = self.FIRST_GAP

    def choose(self, macs: int) -> tuple[bool, bool]:
        """(run this product multi-threaded?, is that a probe?)"""
        self.count += 1
        if macs not in self.single:
            if macs in self.seen:
                return False, False  # second sight: learn its one-thread time
            # First sight, usually the first run, which a fresh process waits on: run it as
            # the recent products ran (it would not tell much anyway: cold pages, cold caches).
            if len(self.seen) >= self.MAX_SIZES:
                self.seen.clear()
            self.seen.add(macs)
            return self.multi, False
        if not self.multi and self.count >= self.next_probe:
            return True, True
        return self.multi, False

    def record(self, macs: int, multi: bool, took: float, probe: bool) -> None:
        if not multi:
            old = self.single.get(macs)
            if old is None and len(self.single) >= self.MAX_SIZES:
                self.single.clear()
            self.seen.discard(macs)
            self.single[macs] = took if old is None else 0.5 * (old + took)
            return
        single = self.single.get(macs)
        if single is None:  # first sight, or forgotten meanwhile
            return
        excess = took / single
        self.excess.append(excess)
        if probe:
            self.gap = self.FIRST_GAP if excess < 1.0 else min(2 * self.gap, self.MAX_GAP)
            self.next_probe = self.count + self.gap
        if len(self.excess) >= 3:
            self.multi = sorted(self.excess)[len(self.excess) // 2] < 1.0


_chooser = _Chooser()


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``numpy.matmul(a, b, out=out)`` on the BLAS thread count that suits it (see above)."""
    macs = (a.shape[-2] if a.ndim > 1 else 1) * a.shape[-1] * (b.shape[-1] if b.ndim > 1 else 1)
    return _sized(macs, np.matmul, a, b, out)


def _sized(macs: int, product, *args):
    """``product(*args)`` on the thread count that suits ``macs`` multiply-adds."""
    if macs < _floor:
        return product(*args)
    if macs < SMALL_PRODUCT or _limit <= 1:
        want = 1 if macs < SMALL_PRODUCT else _limit
        if want != _now:
            _switch(want)
        return product(*args)
    chooser = _chooser
    multi, probe = chooser.choose(macs)
    want = _limit if multi else 1
    if want != _now:
        _switch(want)
    t0 = perf_counter()
    y = product(*args)
    chooser.record(macs, multi, perf_counter() - t0, probe)
    return y


def _accumulate(gemm, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    m, k = a.shape
    n = b.shape[1]
    # Row-major (101), neither operand transposed (111), alpha = beta = 1.
    gemm(101, 111, 111, m, n, k, 1.0, a.ctypes.data, k, b.ctypes.data, n, 1.0, c.ctypes.data, n)
    return c


def accumulates(dtype: np.dtype) -> bool:
    """True when ``matmul_accumulate`` of C-contiguous ``dtype`` operands is one BLAS call
    (NumPy's OpenBLAS, float32 or float64)."""
    if not _resolved:
        with _lock:
            if not _resolved:
                _resolve()
    return np.dtype(dtype) in _gemms


def matmul_accumulate(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``c += a @ b`` for 2-D operands; returns ``c``.

    Where ``accumulates`` holds and the operands are C-contiguous in ``c``'s dtype, one BLAS
    call computes it (beta = 1: the product is added as it is written, no pass of its own);
    otherwise NumPy's product, then an add.
    """
    gemm = _gemms.get(c.dtype) if _resolved else None
    if (
        gemm is None
        or a.dtype != c.dtype
        or b.dtype != c.dtype
        or a.ndim != 2
        or b.ndim != 2
        or c.shape != (a.shape[0], b.shape[1])
        or a.shape[1] != b.shape[0]
        or a.shape[1] == 0
        or c.size == 0
        or not (a.flags.c_contiguous and b.flags.c_contiguous and c.flags.c_contiguous)
        or not c.flags.writeable
    ):
        c += matmul(a, b)
        return c
    return _sized(a.shape[0] * a.shape[1] * b.shape[1], _accumulate, gemm, a, b, c)
