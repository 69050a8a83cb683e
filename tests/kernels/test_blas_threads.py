"""kernels.blas: BLAS threads chosen per product, set from any thread, and the fallback."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from onnxpy.kernels import blas


def _numpys_openblas() -> list[dict]:
    """threadpoolctl's records of NumPy's OpenBLAS (SciPy's own one is loaded too when another
    test of this worker imported SciPy)."""
    return [
        p
        for p in threadpool_info()
        if p["internal_api"] == "openblas"
        and "numpy" in os.path.basename(os.path.dirname(p["filepath"]))
    ]


def _openblas_threads() -> list[int]:
    return [p["num_threads"] for p in _numpys_openblas()]


@pytest.fixture
def two_threads():
    """BLAS limit 2 for the test, the previous limit back afterwards."""
    before = max(_openblas_threads() or [1])
    blas.set_blas_threads(2)
    yield
    blas.set_blas_threads(before)


def _in_thread(fn):
    box = []
    t = threading.Thread(target=lambda: box.append(fn()))
    t.start()
    t.join(30)
    return box[0]


def test_numpys_openblas_is_found_where_threadpoolctl_sees_it():
    paths = [p["filepath"] for p in _numpys_openblas()]
    assert len(paths) == 1, "NumPy's wheel bundles one OpenBLAS"
    assert blas._find_openblas() == paths[0]
    assert blas.blas_switchable()


def test_the_count_is_set_from_a_worker_thread(two_threads):
    """threadpoolctl's limits are a no-op outside the first thread that set one; a server
    creates sessions and runs products on its own threads."""
    assert _in_thread(lambda: (blas.set_blas_threads(1), _openblas_threads())[1]) == [1]
    assert _in_thread(lambda: (blas.set_blas_threads(2), _openblas_threads())[1]) == [2]


def test_small_products_run_on_one_thread_large_ones_on_the_limit(two_threads, monkeypatch):
    rng = np.random.default_rng(0)
    small_a = rng.standard_normal((8, 256), dtype=np.float32)
    small_b = rng.standard_normal((256, 1024), dtype=np.float32)  # 2M multiply-adds
    monkeypatch.setattr(blas, "SMALL_PRODUCT", 8 * 256 * 1024 + 1)
    y = _in_thread(lambda: blas.matmul(small_a, small_b))
    np.testing.assert_allclose(y, small_a.astype(np.float64) @ small_b, rtol=1e-4, atol=1e-4)
    assert _openblas_threads() == [1]
    chooser = blas._Chooser()
    chooser.single[8 * 256 * 1024] = 1.0  # its one-thread time is known, nothing slow seen
    monkeypatch.setattr(blas, "_chooser", chooser)
    monkeypatch.setattr(blas, "SMALL_PRODUCT", 1)
    out = np.empty((8, 1024), np.float32)
    assert _in_thread(lambda: blas.matmul(small_a, small_b, out=out)) is out
    assert _openblas_threads() == [2]
    np.testing.assert_allclose(out, y, rtol=1e-6)


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [
        ((300,), (300, 200)),
        ((200, 300), (300,)),
        ((4, 64, 96), (96, 128)),
        ((3, 1, 50), (3, 50, 7)),
    ],
)
def test_matmul_agrees_with_numpy_for_every_operand_form(a_shape, b_shape, monkeypatch):
    monkeypatch.setattr(blas, "SMALL_PRODUCT", 1)  # large enough to be timed and chosen
    rng = np.random.default_rng(1)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    for _ in range(4):  # first sight, learning run on one thread, then as chosen
        np.testing.assert_allclose(blas.matmul(a, b), np.matmul(a, b), rtol=1e-5, atol=1e-5)


def test_chooser_goes_to_one_thread_while_threads_lose_and_back_when_they_pay():
    c = blas._Chooser()
    size = 10_000_000
    assert c.choose(size) == (True, False)  # first sight: as the recent products ran
    c.record(size, True, 9.0, False)  # cold: not judged, no one-thread time to judge it by
    assert c.multi and not c.excess
    assert c.choose(size) == (False, False)  # second: learn the one-thread time
    c.record(size, False, 1.0, False)
    assert c.choose(size) == (True, False)
    for _ in range(3):  # the machine is busy: two threads take 3x one thread's time
        multi, probe = c.choose(size)
        assert multi and not probe
        c.record(size, multi, 3.0, probe)
    assert not c.multi
    probes = []
    for _ in range(8 + 16 + 32):
        multi, probe = c.choose(size)
        if probe:
            probes.append(c.count)
            c.record(size, True, 3.0, True)  # still losing: the next probe comes later
        else:
            assert not multi
            c.record(size, False, 1.0, False)
    assert probes[1] - probes[0] == 16 and probes[2] - probes[1] == 32
    while c.count < c.next_probe - 1:  # the cores are free again: probes win
        assert c.choose(size)[0] is False
        c.record(size, False, 1.0, False)
    for _ in range(200):
        multi, probe = c.choose(size)
        c.record(size, multi, 0.5 if multi else 1.0, probe)
        if c.multi:
            break
    assert c.multi and c.gap == blas._Chooser.FIRST_GAP


def test_one_thread_times_follow_the_machine():
    """A running average, not the best time ever: when the machine slows down (shared cores)
    two threads are judged against what one thread takes now."""
    c = blas._Chooser()
    c.record(5, False, 1.0, False)
    c.record(5, False, 3.0, False)
    assert c.single[5] == 2.0
    for _ in range(3):
        c.record(5, True, 1.5, False)  # slower than one thread on a quiet machine, faster now
    assert c.multi


def test_without_openblas_nothing_is_switched_and_limits_go_through_threadpoolctl(monkeypatch):
    calls = []
    monkeypatch.setattr(blas, "_find_openblas", lambda: None)
    for name, value in [("_resolved", False), ("_setter", None), ("_limit", 0), ("_now", 0)]:
        monkeypatch.setattr(blas, name, value)
    monkeypatch.setattr(blas, "_gemms", {})
    monkeypatch.setattr(blas, "_floor", blas._OWN_SINGLE)
    import threadpoolctl

    monkeypatch.setattr(threadpoolctl, "threadpool_limits", lambda **kw: calls.append(kw))
    assert not blas.blas_switchable()
    a = np.ones((512, 512), np.float32)
    np.testing.assert_array_equal(blas.matmul(a, a), np.full((512, 512), 512, np.float32))
    assert not blas.accumulates(np.float32)  # and C += A @ B is a product, then an add
    c = np.ones((512, 512), np.float32)
    np.testing.assert_array_equal(blas.matmul_accumulate(a, a, c), np.full_like(c, 513))
    blas.fit_blas_threads(1 << 30)
    blas.set_blas_threads(3)
    assert calls == [{"limits": 3, "user_api": "blas"}]
