"""kernels.threads.one_blas_thread: one BLAS thread inside, the limit restored after."""

from __future__ import annotations

import threading

from threadpoolctl import threadpool_info, threadpool_limits

from onnxpy.kernels import threads


def _blas_threads() -> set[int]:
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


def test_section_runs_blas_on_one_thread_and_restores(monkeypatch):
    monkeypatch.setattr(threads, "_current", 2)
    with threadpool_limits(limits=2, user_api="blas"):
        with threads.one_blas_thread:
            assert _blas_threads() == {1}
            with threads.one_blas_thread:  # nested: still one, and the outer exit restores
                assert _blas_threads() == {1}
            assert _blas_threads() == {1}
        assert _blas_threads() == {2}


class _Recorder:
    """Stands for threadpoolctl's controller: records limits set and restored."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def limit(self, *, limits, user_api):
        self.calls.append(f"limit {limits} {user_api}")
        recorder = self

        class _Limiter:
            def restore_original_limits(self) -> None:
                recorder.calls.append("restore")

        return _Limiter()


def test_overlapping_sections_on_threads_set_and_restore_once(monkeypatch):
    """The first section to enter sets one thread, the last to leave restores (whatever
    the order threads leave in), so overlapping sections never leave one thread behind."""
    monkeypatch.setattr(threads, "_current", 2)
    section = threads._OneBlasThread()
    section._controller = recorder = _Recorder()
    inside, release = threading.Barrier(3), threading.Event()

    def worker() -> None:
        with section:
            inside.wait(10)
            release.wait(10)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(2)]
    for t in pool:
        t.start()
    inside.wait(10)
    assert recorder.calls == ["limit 1 blas"]
    release.set()
    for t in pool:
        t.join(10)
    assert recorder.calls == ["limit 1 blas", "restore"]
    with section:  # and again from scratch
        pass
    assert recorder.calls == ["limit 1 blas", "restore", "limit 1 blas", "restore"]


def test_single_threaded_sessions_leave_the_limit_alone(monkeypatch):
    monkeypatch.setattr(threads, "_current", 1)
    with threadpool_limits(limits=2, user_api="blas"):
        with threads.one_blas_thread:
            assert _blas_threads() == {2}  # nothing to lower: no controller call at all
