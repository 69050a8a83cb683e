"""Time runtimes on one model, each in a fresh process: the tutorials' "prediction time per
runtime" table, measured fairly.

Runtimes: ``onnxpy``, ``onnxruntime``, ``reference`` (onnx.reference) and ``sklearn:FILE`` (the
pickled estimator itself; unpickling runs code, so it needs ``trust_pickle``). Every runtime
gets the same inputs (generated once, saved, loaded by each child) and the same thread count.
A fresh process per runtime makes import, session creation and peak memory its own.

Per runtime and batch size: session creation time, median and p90 latency, throughput (rows per
second at the median) and the process's peak resident memory. This module (with compare and
validate) may call onnxruntime and onnx.reference: they are benchmark peers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from onnxpy.errors import InvalidArgument
from onnxpy.tools.io import load_model_proto, make_feeds, model_inputs

__all__ = ["BenchRow", "BenchReport", "bench_model", "parse_runtimes"]

RUNTIMES = ("onnxpy", "onnxruntime", "reference")


@dataclass
class BenchRow:
    runtime: str
    batch: int
    create_ms: float = 0.0
    median_ms: float = 0.0
    p90_ms: float = 0.0
    rows_per_s: float = 0.0
    peak_mb: float = 0.0
    runs: int = 0
    error: str = ""


@dataclass
class BenchReport:
    model: str
    runtimes: list[str]
    batches: list[int]
    threads: int
    rows: list[BenchRow] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def row(self, runtime: str, batch: int) -> BenchRow | None:
        return next((r for r in self.rows if r.runtime == runtime and r.batch == batch), None)

    def format(self) -> str:
        w = max([len(r) for r in self.runtimes] + [7])
        head = (
            f"{'runtime':<{w}} {'batch':>5} {'session ms':>10} {'median ms':>10} {'p90 ms':>9} "
            f"{'rows/s':>10} {'peak MB':>8}"
        )
        lines = [f"bench {self.model} ({self.threads or 'default'} threads)", head]
        for r in self.rows:
            if r.error:
                lines.append(f"{r.runtime:<{w}} {r.batch:>5} error: {r.error}")
                continue
            lines.append(
                f"{r.runtime:<{w}} {r.batch:>5} {r.create_ms:>10.1f} {r.median_ms:>10.3f} "
                f"{r.p90_ms:>9.3f} {r.rows_per_s:>10.0f} {r.peak_mb:>8.0f}"
            )
        return "\n".join(lines)


def parse_runtimes(text: str | Sequence[str]) -> list[str]:
    """``onnxpy,onnxruntime,sklearn:model.pkl`` -> list, each checked."""
    items = [t for t in (text.split(",") if isinstance(text, str) else text) if t]
    for r in items:
        if r not in RUNTIMES and not r.startswith("sklearn:"):
            raise InvalidArgument(
                f"runtime {r!r}: choose from {', '.join(RUNTIMES)} or sklearn:FILE"
            )
    if not items:
        raise InvalidArgument("name at least one runtime")
    return items


# -- child side ---------------------------------------------------------------------------------
def _peak_mb() -> float:
    """Peak resident memory of this process (VmHWM: the child's own, not inherited at fork)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _limit_threads(threads: int) -> None:
    if threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)


def _open(runtime: str, model: str, threads: int) -> Callable[[dict], Any]:
    """Create the runtime's session; return ``run(feeds)``."""
    if runtime == "onnxpy":
        import onnxpy

        so = onnxpy.SessionOptions()
        so.intra_op_num_threads = threads
        sess = onnxpy.InferenceSession(model, so)
        return lambda feeds: sess.run(None, feeds)
    if runtime == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        return lambda feeds: sess.run(None, feeds)
    if runtime == "reference":
        from onnx.reference import ReferenceEvaluator

        ev = ReferenceEvaluator(model)
        return lambda feeds: ev.run(None, feeds)
    if runtime.startswith("sklearn:"):
        import joblib

        # n_jobs stays as the estimator was saved: joblib's worker start-up per call would
        # dominate small batches (a 10-tree forest at batch 1: 0.5 ms -> 13 ms with n_jobs=2);
        # the thread count still applies to its BLAS pools.
        est = joblib.load(runtime[len("sklearn:") :])
        predict = getattr(est, "predict_proba", None) or est.predict
        return lambda feeds: predict(next(iter(feeds.values())))
    raise InvalidArgument(f"unknown runtime {runtime!r}")


def _time(run: Callable[[dict], Any], feeds: dict, seconds: float, max_runs: int) -> list[float]:
    run(feeds)  # warm-up: caches, lazy plans, BLAS pools
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs:
        t0 = time.perf_counter()
        run(feeds)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start >= seconds and len(times) >= 3:
            break
    return times


def child(cfg: dict) -> None:
    """Measure one runtime on every batch; print one JSON line per batch."""
    _limit_threads(cfg["threads"])
    t0 = time.perf_counter()
    run = _open(cfg["runtime"], cfg["model"], cfg["threads"])
    create = time.perf_counter() - t0
    for batch in cfg["batches"]:
        with np.load(cfg["feeds"][str(batch)], allow_pickle=False) as z:
            feeds = {k: z[k] for k in z.files}
        times = np.asarray(_time(run, feeds, cfg["seconds"], cfg["max_runs"]))
        median = float(np.median(times))
        row = BenchRow(
            cfg["runtime"], batch, create * 1e3, median * 1e3,
            float(np.percentile(times, 90)) * 1e3, batch / median if median else 0.0,
            _peak_mb(), len(times),
        )  # fmt: skip
        print("BENCH " + json.dumps(asdict(row)), flush=True)


# -- parent side --------------------------------------------------------------------------------
def bench_model(
    model: str | os.PathLike,
    runtimes: Sequence[str] | str = ("onnxpy", "onnxruntime"),
    batches: Sequence[int] = (1,),
    *,
    inputs: Sequence[str] = (),
    seconds: float = 1.0,
    max_runs: int = 10_000,
    threads: int = 0,
    trust_pickle: bool = False,
    timeout: float = 600.0,
    progress: Callable[[int, int], None] | None = None,
) -> BenchReport:
    """Benchmark ``model`` on each runtime (a fresh process each) at each batch size.

    ``inputs`` are make_feeds specs (symbolic dims take the batch size); ``seconds`` is the
    time spent repeating each measurement (at least 3 runs). A runtime that fails reports
    its error in its rows instead of stopping the others.
    """
    path = os.fspath(model)
    runtimes = parse_runtimes(runtimes)
    if any(r.startswith("sklearn:") for r in runtimes) and not trust_pickle:
        raise InvalidArgument(
            "a sklearn:FILE runtime unpickles FILE, which runs any code it contains: pass "
            "--trust-pickle (trust_pickle=True) only for a file you made or trust"
        )
    for r in runtimes:
        if r.startswith("sklearn:") and not os.path.isfile(r[8:]):
            raise InvalidArgument(f"{r}: no such file")
    batches = [int(b) for b in batches]
    if not batches or min(batches) < 1:
        raise InvalidArgument("batch sizes must be positive integers")
    infos = model_inputs(load_model_proto(path, weights=False))
    report = BenchReport(path, list(runtimes), batches, threads)
    with tempfile.TemporaryDirectory(prefix="onnxpy-bench-") as tmp:
        feed_files = {}
        for b in batches:
            feed_files[str(b)] = os.path.join(tmp, f"feeds_{b}.npz")
            np.savez(feed_files[str(b)], **make_feeds(infos, inputs, batch=b))
        for done, runtime in enumerate(runtimes):
            cfg = {"runtime": runtime, "model": os.path.abspath(path), "batches": batches,
                   "feeds": feed_files, "seconds": seconds, "max_runs": max_runs,
                   "threads": threads}  # fmt: skip
            report.rows += _spawn(cfg, timeout)
            if progress is not None:
                progress(done + 1, len(runtimes))
    return report


def _spawn(cfg: dict, timeout: float) -> list[BenchRow]:
    env = dict(os.environ)
    if cfg["threads"]:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(cfg["threads"])
    cmd = [sys.executable, "-m", "onnxpy.tools.bench", json.dumps(cfg)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        out, err = proc.stdout, proc.stderr if proc.returncode else ""
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = f"killed after {timeout:.0f} s"
    rows = [BenchRow(**json.loads(ln[6:])) for ln in out.splitlines() if ln.startswith("BENCH ")]
    if err or not rows:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()] or ["no result"]
        done = {r.batch for r in rows}
        rows += [BenchRow(cfg["runtime"], b, error=lines[-1][:200]) for b in cfg["batches"]
                 if b not in done]  # fmt: skip
    return rows


if __name__ == "__main__":
    child(json.loads(sys.argv[1]))
