"""Runtime-vs-runtime benchmark over the zoo: onnxpy, onnxruntime, onnx.reference, scikit-learn.

Every (model, runtime) pair is measured in a fresh subprocess, so that session creation, imports
and peak memory (``ru_maxrss``) belong to that pair alone. All runtimes get the same thread count:
onnxruntime through ``intra_op_num_threads``, NumPy's BLAS through threadpoolctl (or the
``OMP_NUM_THREADS`` family of variables, set before the child imports anything).

    python -m benchmarks.run                       # everything, results in docs/benchmarks/
    python -m benchmarks.run --quick --models mlp,logreg --runtimes onnxpy,onnxruntime
    python -m benchmarks.run --from-json docs/benchmarks/results.json   # re-render only

Outputs: ``results.md`` (tables and ratios), ``results.json`` (raw numbers) and
``latency.png`` (average prediction time per runtime, log scale; needs matplotlib).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import zoo

ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = ("onnxpy", "onnxruntime", "onnx.reference", "sklearn")
REFERENCE = "onnxruntime"


@dataclass(frozen=True)
class ModelPlan:
    """Which batch sizes a model is timed at, and why when there is only one."""

    batches: tuple[int, ...]
    note: str = ""
    flops: bool = False  # report achieved GFLOP/s (dense models)


PLANS: dict[str, ModelPlan] = {
    "mlp": ModelPlan((1, 64)),
    "tiny10": ModelPlan((1,), "batch 1: ten elementwise nodes, measures per-node dispatch"),
    "resnet50": ModelPlan((1,), "batch 1 only (224x224 images; larger batches add little)", True),
    "bert_base": ModelPlan((1,), "batch 1, sequence length 128", True),
    "iris_forest": ModelPlan((1, 1000)),
    "big_forest": ModelPlan((1, 1000)),
    "logreg": ModelPlan((1, 1000)),
    "mobilenet": ModelPlan((1,), "batch 1, 224x224: depthwise + pointwise convolutions", True),
    "lstm": ModelPlan((1,), "batch 1, 64 steps: two LSTM layers and a bidirectional GRU"),
    "gpt2": ModelPlan((1,), "batch 1, 64 tokens: 12-layer decoder, ~3,300 nodes", True),
    "iris_forest100": ModelPlan((1, 1000), "scikit-learn's default 100 trees"),
    "knn": ModelPlan((1, 500), "k=5 over 5,000 stored rows: distances in a Scan, then TopK"),
    "lightgbm": ModelPlan((1, 1000), "200 trees of up to 31 leaves, 3 classes (onnxmltools)"),
}


@dataclass(frozen=True)
class Budget:
    """How long one measurement may take: repeats until ``seconds`` (and ``min_repeats``)."""

    seconds: float = 8.0
    min_repeats: int = 5
    # High enough that the time budget ends every measurement: a 10 us model stopped at 1,000
    # repeats was measured over 10 ms, at the mercy of one slow spell of the shared machine.
    max_repeats: int = 200_000
    cap: float = 60.0  # a single prediction slower than this is skipped; total per batch too


# ===============================================================================================
# Child side: one (model, runtime) pair, results as JSON lines on stdout
# ===============================================================================================
class _Timeout(Exception):
    pass


def _alarm(_signum: int, _frame: Any) -> None:
    raise _Timeout


def _guarded(fn: Callable[[], Any], seconds: float) -> tuple[Any, float]:
    """Call ``fn`` under a wall-clock alarm; return its result and duration."""
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        t0 = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _limit_threads(threads: int) -> str:
    """Pin BLAS/OpenMP pools of this process; say how."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "env (OMP/OPENBLAS/MKL_NUM_THREADS)"
    threadpool_limits(threads)
    return "threadpoolctl + env"


def _import_runtime(name: str) -> None:
    """Import the runtime's modules, so that session creation is timed without them."""
    import importlib

    modules = {
        "onnxpy": ["onnxpy"],
        "onnxruntime": ["onnxruntime"],
        "onnx.reference": ["onnx.reference"],
        "sklearn": ["sklearn.ensemble", "sklearn.linear_model"],
    }[name]
    for mod in modules:
        importlib.import_module(mod)


def _load_runtime(name: str, model: str, path: str, threads: int) -> Callable[[dict], list]:
    """Create the session; return ``run(feeds) -> list of outputs``."""
    if name == "onnxpy":
        import onnxpy

        so = onnxpy.SessionOptions()
        so.intra_op_num_threads = threads
        sess = onnxpy.InferenceSession(path, so)
        return lambda feeds: sess.run(None, feeds)
    if name == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        return lambda feeds: sess.run(None, feeds)
    if name == "onnx.reference":
        from onnx.reference import ReferenceEvaluator

        ev = ReferenceEvaluator(path)
        return lambda feeds: ev.run(None, feeds)
    if name == "sklearn":
        return _sklearn_runner(model, threads)
    raise ValueError(f"unknown runtime {name!r}")


def _sklearn_runner(model: str, threads: int) -> Callable[[dict], list]:
    """One predict_proba pass, label = argmax (what predict does, without a second pass)."""
    est = zoo.sklearn_model(model)
    if hasattr(est, "n_jobs"):
        est.n_jobs = threads

    def run(feeds: dict) -> list:
        proba = est.predict_proba(feeds["X"])
        return [est.classes_.take(proba.argmax(axis=1)), proba]

    return run


def _time_batch(run: Callable[[dict], list], feeds: dict, budget: Budget) -> dict[str, Any]:
    """Warm up (guarded by the cap), then repeat within the time budget."""
    outputs, first = _guarded(lambda: run(feeds), budget.cap)
    warm = first
    for _ in range(2):
        if warm > budget.seconds / 10:
            break
        warm += _guarded(lambda: run(feeds), budget.cap)[1]
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < budget.max_repeats:
        try:
            times.append(_guarded(lambda: run(feeds), budget.cap)[1])
        except _Timeout:
            break
        elapsed = time.perf_counter() - start
        enough = elapsed >= budget.seconds and len(times) >= budget.min_repeats
        if enough or elapsed >= budget.cap:
            break
    arr = np.asarray(times or [first])
    return {
        "first_s": first,
        "median_s": float(np.median(arr)),
        "p90_s": float(np.percentile(arr, 90)),
        "mean_s": float(arr.mean()),
        "repeats": len(times),
        "outputs": outputs,
    }


def _emit(record: dict[str, Any]) -> None:
    print("RESULT " + json.dumps(record), flush=True)


def _maxrss_mb() -> float:
    """Peak resident memory of this process (MB).

    Linux's ``ru_maxrss`` keeps the parent's RSS at fork time across ``exec``, so a child of a
    big parent would report the parent's size. ``VmHWM`` belongs to the new address space only.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_measure(cfg: dict[str, Any]) -> None:
    """Measure one (model, runtime) pair and emit one record per stage."""
    threads, model, runtime = cfg["threads"], cfg["model"], cfg["runtime"]
    pinning = _limit_threads(threads)
    budget = Budget(**cfg["budget"])
    path = str(zoo.build(model))
    t0 = time.perf_counter()
    _import_runtime(runtime)
    import_s = time.perf_counter() - t0
    _emit({"stage": "start", "pinning": pinning, "import_s": import_s, "rss_mb": _maxrss_mb()})
    t0 = time.perf_counter()
    run = _load_runtime(runtime, model, path, threads)
    _emit({"stage": "session", "create_s": time.perf_counter() - t0, "rss_mb": _maxrss_mb()})
    for batch in cfg["batches"]:
        feeds = zoo.inputs_for(model, batch=batch, seed=1)
        try:
            res = _time_batch(run, feeds, budget)
        except _Timeout:
            _emit({"stage": "batch", "batch": batch, "skipped": f"one run > {budget.cap:.0f} s"})
            break
        outputs = res.pop("outputs")
        out_file = Path(cfg["out_dir"]) / f"{model}.{runtime}.b{batch}.npz"
        np.savez(out_file, *[np.asarray(o) for o in outputs])
        _emit({"stage": "batch", "batch": batch, **res, "rss_mb": _maxrss_mb()})
    _emit({"stage": "end", "rss_mb": _maxrss_mb()})


def child_gemm(cfg: dict[str, Any]) -> None:
    """NumPy's float32 GEMM rate on this machine (n x n @ n x n), the roof for dense models."""
    pinning = _limit_threads(cfg["threads"])
    n = cfg.get("n", 2048)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    res = _time_batch(lambda _: [a @ b], {}, Budget(**cfg["budget"]))
    _emit({"stage": "gemm", "n": n, "pinning": pinning, "gflops": 2 * n**3 / res["median_s"] / 1e9})


def child_profile(cfg: dict[str, Any]) -> None:
    """Per-op-type time (ms per run) from the runtime's own Chrome-trace profiler."""
    _limit_threads(cfg["threads"])
    runtime, model, batch = cfg["runtime"], cfg["model"], cfg["batch"]
    prefix = str(Path(cfg["out_dir"]) / f"profile_{model}_{runtime}")
    if runtime == "onnxpy":
        import onnxpy as rt
    else:
        import onnxruntime as rt
    so = rt.SessionOptions()
    so.intra_op_num_threads = cfg["threads"]
    so.enable_profiling = True
    so.profile_file_prefix = prefix
    kwargs = {"providers": ["CPUExecutionProvider"]} if runtime == "onnxruntime" else {}
    sess = rt.InferenceSession(str(zoo.build(model)), so, **kwargs)
    feeds = zoo.inputs_for(model, batch=batch, seed=1)
    for _ in range(cfg["runs"] + 1):  # the first run is a warm-up, dropped below
        sess.run(None, feeds)
    with open(sess.end_profiling()) as f:
        events = json.load(f)
    _emit({"stage": "profile", "batch": batch, "ops": _op_times(events)})


def _op_times(events: list[dict[str, Any]]) -> dict[str, float]:
    """Milliseconds per run by op type, ignoring the first (warm-up) run."""
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    if len(runs) < 2:
        return {}
    after = runs[0]["ts"] + runs[0]["dur"]
    totals: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= after:
            op = e.get("args", {}).get("op_name", "?")
            totals[op] = totals.get(op, 0.0) + e["dur"] / 1000.0
    n = len(runs) - 1
    return {op: ms / n for op, ms in sorted(totals.items(), key=lambda kv: -kv[1])}


# ===============================================================================================
# Parent side: orchestration
# ===============================================================================================
def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("ONNXPY_DEV_TOLERATE_BROKEN_KERNELS", "1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def spawn(mode: str, cfg: dict[str, Any], timeout: float) -> tuple[list[dict], str]:
    """Run a child; return its records (those emitted before a timeout too) and an error."""
    cmd = [sys.executable, "-m", "benchmarks.run", "--child", mode, json.dumps(cfg)]
    env = _child_env(cfg["threads"])
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        out, err = proc.stdout, proc.stderr if proc.returncode else ""
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = f"killed after {timeout:.0f} s"
    records = [json.loads(ln[7:]) for ln in out.splitlines() if ln.startswith("RESULT ")]
    return records, _last_error_line(err)


def _last_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and "Warning" not in ln]
    return lines[-1][:300] if lines else ""


def measure_pair(
    model: str, runtime: str, args: argparse.Namespace, tmp: Path, budget: Budget | None = None
) -> dict[str, Any]:
    """One (model, runtime) result: session time, per-batch latency, peak RSS, error if any."""
    plan = PLANS[model]
    budget = budget or args.budget
    cfg = {
        "model": model,
        "runtime": runtime,
        "threads": args.threads,
        "batches": list(plan.batches),
        "budget": asdict(budget),
        "out_dir": str(tmp),
    }
    timeout = 120 + len(plan.batches) * (3 * budget.cap + budget.seconds)
    records, err = spawn("measure", cfg, timeout)
    res: dict[str, Any] = {"model": model, "runtime": runtime, "batches": {}, "error": err}
    for r in records:
        stage = r.pop("stage")
        if stage == "session":
            res["create_s"] = r["create_s"]
        elif stage == "batch":
            res["batches"][str(r.pop("batch"))] = r
        elif stage == "start":
            res["pinning"] = r["pinning"]
            res["import_s"] = r["import_s"]
            res["rss_import_mb"] = r["rss_mb"]
        if "rss_mb" in r:
            res["rss_mb"] = r["rss_mb"]
    first = res["batches"].get(str(plan.batches[0]), {}).get("first_s")
    if first is not None and "import_s" in res and "create_s" in res:
        # What a user waits for in a fresh process: import, session, the first prediction.
        res["startup_s"] = res["import_s"] + res["create_s"] + first
    return res


def merge_rounds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several rounds of the same pair: per batch the median of the rounds'
    medians, p90s and means (a round hit by a slow spell of the shared machine moves it
    little), the median session time, the highest peak RSS; ``rounds`` records how many."""
    if len(results) == 1:
        return results[0]
    res = dict(results[0])
    res["rounds"] = len(results)
    res["error"] = next((r["error"] for r in results if r.get("error")), None)
    for key in ("create_s", "import_s", "startup_s"):
        values = [r[key] for r in results if key in r]
        if values:
            res[key] = float(np.median(values))
    rss = [r["rss_mb"] for r in results if "rss_mb" in r]
    if rss:
        res["rss_mb"] = max(rss)
    res["batches"] = {}
    for batch, first in results[0]["batches"].items():
        timed = [r["batches"][batch] for r in results if "median_s" in r["batches"].get(batch, {})]
        if len(timed) < len(results):
            res["batches"][batch] = first
            continue
        merged = dict(first)
        for key in ("median_s", "p90_s", "mean_s"):
            merged[key] = float(np.median([t[key] for t in timed]))
        merged["repeats"] = sum(t["repeats"] for t in timed)
        res["batches"][batch] = merged
    return res


def agreement(model: str, runtime: str, batches: dict, tmp: Path) -> dict[str, Any] | None:
    """Max |diff| of float outputs and count of differing labels vs onnxruntime."""
    for batch in sorted((int(b) for b in batches), reverse=True):
        mine = tmp / f"{model}.{runtime}.b{batch}.npz"
        ref = tmp / f"{model}.{REFERENCE}.b{batch}.npz"
        if mine.exists() and ref.exists():
            a, b = np.load(mine), np.load(ref)
            diff, rel, mismatched = 0.0, 0.0, 0
            for key in b.files:
                x, y = a[key], b[key]
                if x.shape != y.shape:
                    return {"batch": batch, "error": f"shape {x.shape} vs {y.shape}"}
                if np.issubdtype(y.dtype, np.floating):
                    d = np.abs(x.astype(np.float64) - y.astype(np.float64))
                    top = float(np.nanmax(d)) if d.size else 0.0
                    scale = float(np.nanmax(np.abs(y))) if y.size else 0.0
                    diff = max(diff, top)
                    rel = max(rel, top / scale if scale else top)
                else:
                    mismatched += int((x != y).sum())
            return {
                "batch": batch,
                "max_abs_diff": diff,
                "max_rel_diff": rel,  # relative to the output's largest magnitude
                "label_mismatches": mismatched,
            }
    return None


def runtimes_for(model: str, wanted: list[str]) -> list[str]:
    """onnxruntime first (its outputs are the yardstick); sklearn only where it applies."""
    names = [REFERENCE] + [r for r in wanted if r != REFERENCE]
    return [r for r in names if r != "sklearn" or model in zoo.SKLEARN_MODELS]


def count_flops(model: str, batch: int) -> float:
    """2 x multiply-accumulates of Conv, Gemm and MatMul, with shapes from onnx.shape_inference."""
    import onnx

    proto = onnx.load(str(zoo.build(model)), load_external_data=False)
    feeds = zoo.inputs_for(model, batch=batch, seed=1)
    for vi in proto.graph.input:
        if vi.name in feeds:
            dims = vi.type.tensor_type.shape.dim
            for d, n in zip(dims, feeds[vi.name].shape):
                d.Clear()
                d.dim_value = n
    # data_prop follows Shape -> Gather -> Concat -> Reshape chains (attention head splits)
    graph = onnx.shape_inference.infer_shapes(proto, data_prop=True).graph
    shapes: dict[str, list[int | None]] = {i.name: list(i.dims) for i in graph.initializer}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    macs, unknown = 0, []
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            known = [shapes.get(n) for n in (node.output[0], node.input[0], node.input[1])]
            if all(sh and None not in sh for sh in known):
                macs += _node_macs(node, *known)
            else:
                unknown.append(node.name)
    if unknown:
        print(f"[{model}] FLOPs: shapes unknown for {len(unknown)} nodes", file=sys.stderr)
    return 2.0 * macs


def _node_macs(node: Any, out: list[int], a: list[int], w: list[int]) -> int:
    if node.op_type == "Conv":  # each output element sums Cin/group x kernel products
        return math.prod(out) * math.prod(w[1:])
    if node.op_type == "Gemm":
        trans_a = any(at.name == "transA" and at.i for at in node.attribute)
        return math.prod(out) * (a[0] if trans_a else a[-1])
    return math.prod(out) * a[-1]  # MatMul


def _compile_bytecode() -> None:
    """Write onnxpy's .pyc files before timing start-up, as an installed package has them.

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (set in some shells and CI
    environments) would otherwise compile all of onnxpy's sources in every child: ~100 ms of
    its import, which no user pays twice. The runtimes compared ship compiled code.
    """
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("onnxpy")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(folder, quiet=1)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Build the zoo, measure every pair, the GEMM roof and the profiles.

    onnxruntime and onnxpy are timed in ``args.rounds`` passes over the whole zoo, alternating
    within each model: a pair's rounds lie minutes apart, so a slow spell of the shared
    machine (they last minutes) reaches one round of a pair, not all of them.
    """
    results: dict[str, Any] = {"env": environment(args), "models": {}}
    _compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="onnxpy-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for model in list(args.models):
            t0 = time.perf_counter()
            try:
                zoo.build(model)
            except ImportError as e:  # e.g. lightgbm/onnxmltools (extra "bench") missing
                print(f"[{model}] skipped: cannot build it ({e})", flush=True)
                args.models.remove(model)
                continue
            print(f"[{model}] built/cached in {time.perf_counter() - t0:.1f} s", flush=True)
        rounds = measure_rounds(args, tmp)
        for model in args.models:
            results["models"][model] = measure_model(model, args, tmp, rounds[model])
        if any(PLANS[m].flops for m in args.models):
            gemm, err = spawn("gemm", {"threads": args.threads, "budget": asdict(args.budget)}, 600)
            results["gemm"] = gemm[0] if gemm else {"error": err}
    return results


def _compared(model: str, args: argparse.Namespace) -> list[str]:
    """The runtimes timed in rounds: onnxruntime and onnxpy, when both are wanted."""
    compared = [r for r in runtimes_for(model, args.runtimes) if r in (REFERENCE, "onnxpy")]
    return compared if len(compared) == 2 else []


def measure_rounds(args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, list[dict]]]:
    """{model: {runtime: [one result per round]}} for the compared runtimes."""
    n_rounds = max(1, args.rounds)
    share = replace(args.budget, seconds=args.budget.seconds / n_rounds)
    rounds: dict[str, dict[str, list[dict]]] = {m: {} for m in args.models}
    for r in range(n_rounds):
        for model in args.models:
            for runtime in _compared(model, args):
                res = measure_pair(model, runtime, args, tmp, share)
                rounds[model].setdefault(runtime, []).append(res)
                print(f"[{model}] round {r + 1} {runtime}: {_summary(res)}", flush=True)
    return rounds


def measure_model(
    model: str, args: argparse.Namespace, tmp: Path, rounds: dict[str, list[dict]]
) -> dict[str, Any]:
    plan = PLANS[model]
    entry: dict[str, Any] = {"plan": asdict(plan), "runtimes": {}}
    runtimes = runtimes_for(model, args.runtimes)
    for runtime in runtimes:
        if runtime in rounds:
            res = merge_rounds(rounds[runtime])
        else:
            res = measure_pair(model, runtime, args, tmp)
        if runtime != REFERENCE:
            res["agreement"] = agreement(model, runtime, res["batches"], tmp)
        entry["runtimes"][runtime] = res
        print(f"[{model}] {runtime}: {_summary(res)}", flush=True)
    if plan.flops:
        entry["gflop"] = {str(b): count_flops(model, b) / 1e9 for b in plan.batches}
    if args.profile:
        entry["profile"] = {}
        for runtime in ("onnxpy", "onnxruntime"):
            cfg = {
                "model": model,
                "runtime": runtime,
                "batch": plan.batches[-1],
                "threads": args.threads,
                "runs": 2 if args.quick else 5,
                "out_dir": str(tmp),
            }
            prof, err = spawn("profile", cfg, 900)
            entry["profile"][runtime] = prof[0]["ops"] if prof else {"error": err}
    return entry


def _summary(res: dict[str, Any]) -> str:
    parts = [f"create {res['create_s']:.3f} s" if "create_s" in res else "no session"]
    for b, r in res["batches"].items():
        timing = r["skipped"] if "skipped" in r else f"{r['median_s'] * 1e3:.3f} ms"
        parts.append(f"b{b} {timing}")
    if "startup_s" in res:
        parts.append(f"start-up {res['startup_s'] * 1e3:.0f} ms")
    if "rss_mb" in res:
        parts.append(f"peak {res['rss_mb']:.0f} MB")
    if res.get("error"):
        parts.append(f"error: {res['error']}")
    return ", ".join(parts)


def environment(args: argparse.Namespace) -> dict[str, Any]:
    """What the numbers depend on: date, CPU, versions, threads, budget."""
    import importlib.metadata as md

    versions = {}
    for pkg in ("numpy", "onnxruntime", "onnx", "onnxpy", "scikit-learn", "skl2onnx"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
        "threads": args.threads,
        "budget": asdict(args.budget),
        "rounds": args.rounds,
        "command": " ".join(["python -m benchmarks.run", *sys.argv[1:]]),
    }


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


# ===============================================================================================
# Report: markdown tables and the chart
# ===============================================================================================
def _ms(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x * 1e3:.3g}" if x * 1e3 < 100 else f"{x * 1e3:,.0f}"


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _cell(res: dict, batch: int, key: str) -> str:
    r = res["batches"].get(str(batch))
    if r is None:
        return "failed" if res.get("error") else "-"
    return "skipped (>60 s)" if "skipped" in r else _ms(r[key])


def _agree_cell(res: dict) -> str:
    ag = res.get("agreement")
    if not ag:
        return "-"
    if "error" in ag:
        return ag["error"]
    text = f"{ag['max_abs_diff']:.1e}"
    if ag["label_mismatches"]:
        text += f" ({ag['label_mismatches']} labels differ)"
    return text


def model_table(model: str, entry: dict[str, Any]) -> list[str]:
    batches = entry["plan"]["batches"]
    big = batches[-1]
    head = ["runtime", "import (s)", "session (s)"]
    for b in batches:
        head += [f"b={b} median (ms)", f"b={b} p90 (ms)"]
    head += [f"rows/s at b={big}", "peak RSS (MB)", "max abs diff vs ORT"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for runtime, res in entry["runtimes"].items():
        row = [runtime, _num(res.get("import_s")), _num(res.get("create_s"))]
        for b in batches:
            row += [_cell(res, b, "median_s"), _cell(res, b, "p90_s")]
        r = res["batches"].get(str(big), {})
        row.append(f"{big / r['median_s']:,.0f}" if "median_s" in r else "-")
        row += [_num(res.get("rss_mb"), ",.0f"), _agree_cell(res)]
        lines.append("| " + " | ".join(row) + " |")
        if res.get("error"):
            lines.append(f"| | error: {res['error'].replace('|', '/')} |" + " |" * (len(head) - 2))
    return lines


def _median(res: dict | None, batch: int) -> float | None:
    r = (res or {}).get("batches", {}).get(str(batch), {})
    return r.get("median_s")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def ratio_table(models: dict[str, Any]) -> list[str]:
    """onnxpy / onnxruntime for latency, start-up, RSS and session creation (lower is better).

    Start-up is import + session creation + the first run at the model's first batch, in a
    fresh process; the agreement column is max |onnxpy - onnxruntime| over the output's
    largest magnitude."""
    lines = [
        "| model | batch | latency ratio | start-up ratio | RSS ratio | session-creation ratio "
        "| start-up (ms) onnxpy / ORT | peak RSS (MB) onnxpy / ORT | rel. diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    logs = []
    for model, entry in models.items():
        ours, ref = entry["runtimes"].get("onnxpy"), entry["runtimes"].get(REFERENCE)
        if not ours or not ref:
            continue
        for b in entry["plan"]["batches"]:
            lat = _ratio(_median(ours, b), _median(ref, b))
            if lat:
                logs.append(math.log(lat))
            rss = _ratio(ours.get("rss_mb"), ref.get("rss_mb"))
            ses = _ratio(ours.get("create_s"), ref.get("create_s"))
            start = _ratio(ours.get("startup_s"), ref.get("startup_s"))
            ms = f"{_ms(ours.get('startup_s'))} / {_ms(ref.get('startup_s'))}"
            mb = f"{_num(ours.get('rss_mb'), ',.0f')} / {_num(ref.get('rss_mb'), ',.0f')}"
            ag = ours.get("agreement") or {}
            rel = _num(ag.get("max_rel_diff"), ".1e") if "error" not in ag else ag["error"]
            lines.append(
                f"| {model} | {b} | {_num(lat)} | {_num(start)} | {_num(rss)} | {_num(ses)} "
                f"| {ms} | {mb} | {rel} |"
            )
    if logs:
        geo = math.exp(sum(logs) / len(logs))
        lines.append(f"| **geometric mean** | | **{geo:.3g}** | | | | | | |")
    return lines


def reference_table(models: dict[str, Any]) -> list[str]:
    """How much faster onnxpy is than onnx.reference (and than scikit-learn where it applies)."""
    lines = [
        "| model | batch | onnx.reference / onnxpy | sklearn / onnxpy |",
        "|---|---|---|---|",
    ]
    for model, entry in models.items():
        rts = entry["runtimes"]
        ours = rts.get("onnxpy")
        for b in entry["plan"]["batches"]:
            ref, skl = rts.get("onnx.reference"), rts.get("sklearn")
            ref_txt = _num(_ratio(_median(ref, b), _median(ours, b)))
            if ref and "skipped" in ref["batches"].get(str(b), {}):
                ref_txt = "reference skipped (>60 s per run)"
            skl_txt = _num(_ratio(_median(skl, b), _median(ours, b))) if skl else "n/a"
            lines.append(f"| {model} | {b} | {ref_txt} | {skl_txt} |")
    return lines


def flops_table(results: dict[str, Any]) -> list[str]:
    gemm = results.get("gemm", {}).get("gflops")
    roof = f"{gemm:.1f}" if gemm else "-"
    lines = [
        f"NumPy float32 GEMM (2048 x 2048 @ 2048 x 2048) on this machine: **{roof} GFLOP/s**.",
        "",
        "| model | GFLOP per run | onnxpy GFLOP/s | onnxruntime GFLOP/s | onnxpy % of NumPy GEMM |",
        "|---|---|---|---|---|",
    ]
    for model, entry in results["models"].items():
        for b, gflop in entry.get("gflop", {}).items():
            rates = [
                _ratio(gflop, _median(entry["runtimes"].get(rt), int(b)))
                for rt in ("onnxpy", REFERENCE)
            ]
            share = f"{100 * rates[0] / gemm:.0f} %" if rates[0] and gemm else "-"
            lines.append(
                f"| {model} (b={b}) | {gflop:.2f} | {_num(rates[0], '.1f')} | "
                f"{_num(rates[1], '.1f')} | {share} |"
            )
    return lines


def profile_section(models: dict[str, Any], top: int = 6) -> list[str]:
    lines = []
    for model, entry in models.items():
        prof = entry.get("profile")
        if not prof:
            continue
        ours, ref = prof.get("onnxpy", {}), prof.get(REFERENCE, {})
        lines.append(f"**{model}** (b={entry['plan']['batches'][-1]}, ms per run by op type)")
        lines.append("")
        if "error" in ours:
            lines += [f"onnxpy profile failed: {ours['error']}", ""]
            continue
        total = sum(ours.values()) or 1.0
        ref_ops = {} if "error" in ref else ref
        ref_total = sum(ref_ops.values())
        lines += ["| op (onnxpy) | onnxpy ms | share | onnxruntime ms (same op type) |"]
        lines += ["|---|---|---|---|"]
        for op, ms in list(ours.items())[:top]:
            lines.append(
                f"| {op} | {ms:.3g} | {100 * ms / total:.0f} % | {_num(ref_ops.get(op))} |"
            )
        lines.append(f"| *all ops* | {total:.3g} | 100 % | {ref_total:.3g} |")
        if ref_ops:
            ref_top = ", ".join(f"{op} {ms:.3g}" for op, ms in list(ref_ops.items())[:top])
            lines += ["", f"onnxruntime's top ops (after its graph fusions): {ref_top}."]
        lines.append("")
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    env = results["env"]
    v = env["versions"]
    budget = env["budget"]
    out = [
        "# Benchmark results",
        "",
        f"- Date: {env['date']}; CPU: {env['cpu']}, {env['cores']} cores; Python {env['python']}.",
        f"- numpy {v['numpy']}, onnxruntime {v['onnxruntime']}, onnx {v['onnx']}, "
        f"onnxpy {v['onnxpy']}, scikit-learn {v['scikit-learn']}, skl2onnx {v['skl2onnx']}.",
        f"- Threads: every runtime pinned to {env['threads']} (onnxruntime intra_op_num_threads, "
        "BLAS through threadpoolctl and OMP/OPENBLAS/MKL_NUM_THREADS, scikit-learn n_jobs).",
        "- Each (model, runtime) pair runs in a fresh subprocess: session creation, then per batch "
        f"a warm-up and repeats for ~{budget['seconds']:g} s (at least {budget['min_repeats']}, "
        f"at most {budget['max_repeats']}); a runtime whose single run exceeds "
        f"{budget['cap']:g} s is skipped for that batch.",
        f"- onnxruntime and onnxpy are measured in {env.get('rounds', 1)} passes over the whole "
        "zoo (each pair a fresh process per pass, with that share of the time budget); the "
        "tables give the median of the passes' medians (and p90s), so a slow spell of the "
        "shared machine, which lasts minutes, reaches one pass of a pair rather than all.",
        "- Peak RSS is the child's high-water mark (`VmHWM`, interpreter and imports included; "
        "`ru_maxrss` would include the parent's size at fork time on Linux). "
        "Session time for scikit-learn is the unpickling time.",
        "- **Noise**: this machine has 2 cores shared with other jobs running at the same time, "
        "so timings are noisy (easily +-20 %); ratios within one run are more telling than "
        "absolute numbers. It has slow spells of seconds to minutes in which everything in a "
        "process, NumPy calls and plain Python loops alike, runs ~1.5x slower; each measurement "
        "therefore lasts its whole time budget (a 10 us model stopped at 1,000 repeats was "
        "timed over 10 ms, and one spell moved its row by 50 %).",
        f"- Command: `{env['command'].strip()}`",
        "",
        "![average prediction time per runtime](latency.png)",
        "",
        "The chart shows mean times, which outliers on this shared machine inflate; the tables "
        "give medians and p90.",
        "",
        "## onnxpy / onnxruntime (lower is better; 1.0 = parity)",
        "",
        *ratio_table(results["models"]),
        "",
        "## Speed-up of onnxpy over onnx.reference and scikit-learn (higher: onnxpy faster)",
        "",
        *reference_table(results["models"]),
        "",
    ]
    if any("gflop" in e for e in results["models"].values()):
        out += ["## Achieved GFLOP/s (2 x MACs of Conv, Gemm, MatMul)", "", *flops_table(results)]
        out.append("")
    out += ["## Per-model results", ""]
    for model, entry in results["models"].items():
        note = entry["plan"].get("note")
        out += [f"### {model}" + (f" ({note})" if note else ""), "", *model_table(model, entry), ""]
    prof = profile_section(results["models"])
    if prof:
        out += ["## Where onnxpy spends its time (its own profiler)", "", *prof]
    return "\n".join(out).rstrip() + "\n"


def render_chart(results: dict[str, Any], path: Path) -> bool:
    """Grouped bars of mean latency, one group per (model, batch), log scale."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart", file=sys.stderr)
        return False
    groups = [(m, b) for m, e in results["models"].items() for b in e["plan"]["batches"]]
    runtimes = [r for r in RUNTIMES if any(r in e["runtimes"] for e in results["models"].values())]
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(groups)), 5))
    width = 0.8 / max(1, len(runtimes))
    for i, rt in enumerate(runtimes):
        xs, ys = [], []
        for g, (m, b) in enumerate(groups):
            r = results["models"][m]["runtimes"].get(rt, {}).get("batches", {}).get(str(b), {})
            if "mean_s" in r:
                xs.append(g + (i - (len(runtimes) - 1) / 2) * width)
                ys.append(r["mean_s"] * 1e3)
        ax.bar(xs, ys, width, label=rt)
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)), [f"{m}\nb={b}" for m, b in groups], fontsize=8)
    ax.set_ylabel("mean time per prediction call (ms, log scale)")
    ax.set_title(f"Average prediction time per runtime ({results['env']['threads']} threads)")
    ax.legend()
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ===============================================================================================
# CLI
# ===============================================================================================
def _csv(text: str, allowed: tuple[str, ...] | list[str]) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {list(allowed)}")
    return items


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(PLANS), help="comma list (default: all)")
    p.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma list (default: all)")
    p.add_argument("--quick", action="store_true", help="1 s per measurement, 20 s cap")
    p.add_argument("--seconds", type=float, help="time budget per measurement (default 8)")
    p.add_argument("--max-repeats", type=int, default=Budget.max_repeats)
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="passes over the zoo timing onnxruntime and onnxpy, each pair a fresh process per "
        "pass with that share of the budget (default 3; medians of the passes are reported)",
    )
    p.add_argument("--cap", type=float, help="skip a runtime when one run exceeds this (s)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--no-profile", dest="profile", action="store_false")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    p.add_argument("--from-json", type=Path, help="re-render the report from results.json")
    args = p.parse_args(argv)
    args.models = _csv(args.models, list(PLANS))
    args.runtimes = _csv(args.runtimes, RUNTIMES)
    quick = Budget(seconds=1.0, min_repeats=3, max_repeats=args.max_repeats, cap=20.0)
    base = quick if args.quick else Budget(max_repeats=args.max_repeats)
    args.budget = Budget(
        seconds=args.seconds or base.seconds,
        min_repeats=base.min_repeats,
        max_repeats=args.max_repeats,
        cap=args.cap or base.cap,
    )
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        signal.signal(signal.SIGALRM, _alarm)  # turns the per-run cap into an exception
        {"measure": child_measure, "gemm": child_gemm, "profile": child_profile}[argv[1]](
            json.loads(argv[2])
        )
        return 0
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        results = run_all(args)
        (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "results.md").write_text(render_markdown(results))
    render_chart(results, args.out / "latency.png")
    print(f"wrote {args.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
