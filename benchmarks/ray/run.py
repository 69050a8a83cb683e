"""Scale-out measurements: ``onnxpy serve --ray`` next to ``onnxpy serve`` in the same run, and
``onnxpy batch`` local vs ``--ray`` vs a plain loop over one session.

Serving (the zoo's 784-512-512-10 MLP, batch 1 per request, dynamic batching max 64 rows /
500 us as in benchmarks/serving): for the single-process server and Ray Serve with 1 and 2
replicas (1 CPU each, a local Ray started by the command), it records

- cold start: command started -> first correct answer over HTTP;
- req/s, p50 and p99 at c=1, 8, 32 (``wrk --latency``, JSON v2 body, ``--duration`` s each);
- gRPC latency: ``ModelInfer`` at c=1 from one Python client (raw stub, raw tensor contents);
- memory: PSS of each server process (Ray: each replica, and every process of the Ray instance
  the command started: GCS, raylet, Serve controller and proxy, coordinator, workers);
- shutdown: SIGTERM -> the command exited.

Batch (the zoo's iris forest on ``--rows`` rows, and the MLP on ``--mlp-rows`` rows, Parquet
in row groups of 50k): rows/s of a plain loop (pyarrow batches -> session.run -> ParquetWriter),
of ``onnxpy.batch.run`` locally, and of ``run(..., ray=True)`` on an already started local Ray
with 1 and 2 actors; plus the wall time of ``onnxpy batch --ray`` as a command (which starts
and stops its own Ray). Outputs are checked equal to the plain loop's.

Usage (wrk: ``apt-get install wrk``)::

    python -m benchmarks.ray.run --out docs/benchmarks/ray          # 10 s per point
    python -m benchmarks.ray.run --skip-serving --rows 200000        # batch only

The machine is shared: the load average (``uptime``) is recorded before and after each part.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.serving.run import Server, _body, _repositories, wrk

ROOT = Path(__file__).resolve().parents[2]
# name: (arguments, environment). "haproxy": Ray 2.60's HAProxy ingress (a feature flag, off by
# default), which routes HTTP straight to the replicas instead of through Serve's Python proxy.
SERVERS = {
    "single": ([], {}),
    "ray-1": (["--ray", "--replicas", "1"], {}),
    "ray-2": (["--ray", "--replicas", "2"], {}),
    "ray-2-haproxy": (["--ray", "--replicas", "2"], {"RAY_SERVE_ENABLE_HA_PROXY": "1"}),
}


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- processes and memory -----------------------------------------------------------------------
def _processes() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, command line)} of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        found[int(entry.name)] = (ppid, cmd.strip())
    return found


def _tree(root: int) -> dict[int, str]:
    """The process ``root`` and all its descendants: {pid: command line}."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            out[pid] = procs[pid][1]
            todo.extend(children.get(pid, []))
    return out


def pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def memory(server: Server, kind: str) -> dict:
    tree = _tree(server.proc.pid)
    if kind == "single":
        return {"server_pss_mb": round(pss_mb(server.proc.pid), 1)}
    # Ray retitles a worker with the method it runs: "ray::ServeReplica:onnxpy:onnxpy.xyz"
    replicas = [p for p, c in tree.items() if re.search(r"ServeReplica:onnxpy:onnxpy(?!-)", c)]
    coordinator = [p for p, c in tree.items() if "onnxpy-coordinator" in c]
    return {
        "replica_pss_mb": [round(pss_mb(p), 1) for p in replicas],
        "coordinator_pss_mb": [round(pss_mb(p), 1) for p in coordinator],
        "driver_pss_mb": round(pss_mb(server.proc.pid), 1),
        "ray_total_pss_mb": round(sum(pss_mb(p) for p in tree), 1),
        "ray_processes": len(tree),
    }


# -- gRPC latency -------------------------------------------------------------------------------
def grpc_latency(address: str, model: str, x: np.ndarray, n: int) -> dict:
    import grpc

    from onnxpy.serving.grpc import inference_pb2 as pb
    from onnxpy.serving.grpc import inference_pb2_grpc as pb_grpc

    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.astype(np.float32).tobytes())
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(max(20, n // 10)):
            stub.ModelInfer(request, timeout=30)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            stub.ModelInfer(request, timeout=30)
            times.append((time.perf_counter() - start) * 1000)
    p50, p99 = np.percentile(times, [50, 99])
    return {"grpc_p50_ms": round(p50, 3), "grpc_p99_ms": round(p99, 3), "grpc_requests": n}


# -- serving ------------------------------------------------------------------------------------
def serve_one(kind: str, repo: Path, body_file: Path, body: bytes, x, args) -> dict:
    extra, env = SERVERS[kind]
    cmd = [sys.executable, "-m", "onnxpy", "serve", str(repo), "--http-port", "0",
           "--grpc-port", "0", "--no-access-log", *extra]  # fmt: skip
    start = time.perf_counter()
    server = Server(cmd, env=env)
    grpc_address = None
    try:
        server.wait_answering("mlp", body, timeout=300)
        result: dict = {"server": kind, "cold_start_s": round(time.perf_counter() - start, 2)}
        for line in server.lines:
            m = re.search(r"grpc=([\w.:\[\]]+)", line)
            if line.startswith("onnxpy serve listening:") and m:
                grpc_address = m.group(1)
        wrk(server.url("mlp"), body_file, 8, 3)  # warm-up
        result["load_before"] = load()
        result["points"] = []
        for c in args.concurrency:
            point = {"concurrency": c, **wrk(server.url("mlp"), body_file, c, args.duration)}
            result["points"].append(point)
            print(json.dumps({"server": kind, **point}), flush=True)
        if grpc_address:
            result.update(grpc_latency(grpc_address, "mlp", x, args.grpc_requests))
        result.update(memory(server, kind))
        result["load_after"] = load()
    finally:
        stop = time.perf_counter()
        server.stop(timeout=120)
        result["shutdown_s"] = round(time.perf_counter() - stop, 2)
        result["exit_code"] = server.proc.returncode
    print(json.dumps({k: v for k, v in result.items() if k != "points"}), flush=True)
    return result


def serving(args, folder: Path) -> list[dict]:
    repos = _repositories("mlp", folder)
    body, x = _body("mlp")
    body_file = folder / "mlp.json"
    body_file.write_bytes(body)
    return [serve_one(kind, repos["batched"], body_file, body, x, args) for kind in args.servers]


# -- batch --------------------------------------------------------------------------------------
def _dataset(model: str, rows: int, folder: Path) -> tuple[Path, Path, str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    import onnxpy
    from benchmarks import zoo

    path = zoo.build(model)
    name = onnxpy.InferenceSession(str(path)).get_inputs()[0].name
    rng = np.random.default_rng(0)
    if model == "mlp":
        x = rng.standard_normal((rows, 784), dtype=np.float32)
    else:
        base = np.load(path.with_suffix(".x.npy")).astype(np.float32)
        x = base[rng.integers(0, len(base), rows)] + rng.normal(0, 0.1, (rows, base.shape[1]))
        x = x.astype(np.float32)
    features = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])
    table = pa.table({"id": np.arange(rows), name: features})
    data = folder / f"{model}-{rows}.parquet"
    pq.write_table(table, data, row_group_size=50_000)
    return path, data, name


def plain_loop(model: Path, data: Path, name: str, out: Path, batch: int) -> float:
    """The baseline: pyarrow batches -> one session -> ParquetWriter, nothing else."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import onnxpy

    options = onnxpy.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxpy.InferenceSession(str(model), options)
    names = [o.name for o in session.get_outputs()]
    start = time.perf_counter()
    writer = None
    for b in pq.ParquetFile(data).iter_batches(batch_size=batch):
        column = b.column(name)
        x = column.flatten().to_numpy().reshape(len(b), -1)
        values = session.run(None, {name: x})
        arrays = [b.column("id")]
        for v in values:
            flat = pa.array(v.ravel())
            arrays.append(
                flat if v.ndim == 1 else pa.FixedSizeListArray.from_arrays(flat, v.shape[1])
            )
        table = pa.Table.from_arrays(arrays, ["id", *names])
        writer = writer or pq.ParquetWriter(out, table.schema)
        writer.write_table(table)
    writer.close()
    return time.perf_counter() - start


def batch_one(model: str, rows: int, folder: Path, args) -> dict:
    import logging

    import pyarrow.parquet as pq
    import ray

    from onnxpy.batch import run

    path, data, name = _dataset(model, rows, folder)
    result: dict = {"model": model, "rows": rows, "load_before": load()}
    baseline = folder / "plain.parquet"
    result["plain_loop_rows_per_s"] = round(rows / plain_loop(path, data, name, baseline,
                                                              args.batch_size))  # fmt: skip
    expected = pq.read_table(baseline)
    local = run(path, data, folder / "local.parquet", batch_size=args.batch_size)
    assert pq.read_table(folder / "local.parquet").equals(expected), "local output differs"
    result["local_rows_per_s"] = round(local.rows_per_s)
    ray.init(address="local", include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)  # fmt: skip
    try:
        for actors in (1, 2):
            job = run(path, data, folder / "ray.parquet", batch_size=args.batch_size, ray=True,
                      actors=actors)  # fmt: skip
            assert pq.read_table(folder / "ray.parquet").equals(expected), "Ray output differs"
            result[f"ray_{actors}_actor_rows_per_s"] = round(job.rows_per_s)
        # what a job costs before its first row (actors start, import, build the session):
        # 1,000 rows with 2 actors; the rest of the big job's time is per row
        small = folder / "small.parquet"
        pq.write_table(pq.read_table(data).slice(0, 1000), small)
        fixed = run(path, small, folder / "small-out.parquet", ray=True, actors=2).seconds
        result["ray_2_actor_fixed_s"] = round(fixed, 2)
        result["ray_2_actor_marginal_rows_per_s"] = round(
            (rows - 1000) / max(job.seconds - fixed, 1e-3)
        )
    finally:
        ray.shutdown()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "onnxpy", "batch", str(path), "-i", str(data), "-o",
                    str(folder / "cli.parquet"), "--ray", "--batch-size", str(args.batch_size)],
                   check=True, capture_output=True, cwd=ROOT)  # fmt: skip
    result["cli_ray_wall_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "onnxpy", "batch", str(path), "-i", str(data), "-o",
                    str(folder / "cli-local.parquet"), "--batch-size", str(args.batch_size)],
                   check=True, capture_output=True, cwd=ROOT)  # fmt: skip
    result["cli_local_wall_s"] = round(time.perf_counter() - start, 2)
    result["load_after"] = load()
    print(json.dumps(result), flush=True)
    return result


# -- report -------------------------------------------------------------------------------------
def render(serving_results: list[dict], batch_results: list[dict], meta: dict) -> str:
    lines = [f"Machine: {meta['machine']}; {meta['date']}.", ""]
    if serving_results:
        lines += ["| server | c | req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]
        for r in serving_results:
            for p in r["points"]:
                cells = [r["server"], p["concurrency"], f"{p['requests_per_s']:,.0f}",
                         f"{p['p50_ms']:.1f}", f"{p['p99_ms']:.1f}", p["errors"]]  # fmt: skip
                lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        single = {p["concurrency"]: p for p in serving_results[0]["points"]}
        lines.append("")
        for r in serving_results[1:]:
            ratios = ", ".join(
                f"c={p['concurrency']} "
                f"{p['requests_per_s'] / single[p['concurrency']]['requests_per_s']:.2f}x"
                for p in r["points"]
                if p["concurrency"] in single
            )
            lines.append(f"- {r['server']} / single req/s: {ratios}")
        lines += ["", "| server | cold start s | gRPC p50 ms | gRPC p99 ms | memory | shutdown s |"
                  " load (before -> after) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in serving_results:
            if r["server"] == "single":
                mem = f"server {r['server_pss_mb']:.0f} MB PSS"
            else:
                reps = ", ".join(f"{m:.0f}" for m in r["replica_pss_mb"])
                mem = (f"replicas {reps} MB PSS; Ray instance {r['ray_total_pss_mb']:,.0f} MB "
                       f"({r['ray_processes']} processes)")  # fmt: skip
            cells = [r["server"], f"{r['cold_start_s']:.1f}", f"{r.get('grpc_p50_ms', 0):.2f}",
                     f"{r.get('grpc_p99_ms', 0):.2f}", mem, f"{r['shutdown_s']:.1f}",
                     f"{r['load_before']} -> {r['load_after']}"]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    if batch_results:
        lines += ["", "| model | rows | plain loop rows/s | onnxpy batch (local) | --ray, 1 actor |"
                  " --ray, 2 actors | --ray fixed s / marginal rows/s | CLI local / --ray wall s |"
                  " load |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for b in batch_results:
            cells = [b["model"], f"{b['rows']:,}", f"{b['plain_loop_rows_per_s']:,}",
                     f"{b['local_rows_per_s']:,}", f"{b['ray_1_actor_rows_per_s']:,}",
                     f"{b['ray_2_actor_rows_per_s']:,}",
                     f"{b['ray_2_actor_fixed_s']} / {b['ray_2_actor_marginal_rows_per_s']:,}",
                     f"{b['cli_local_wall_s']} / {b['cli_ray_wall_s']}",
                     f"{b['load_before']} -> {b['load_after']}"]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk point")
    ap.add_argument("--grpc-requests", type=int, default=500)
    ap.add_argument("--rows", type=int, default=1_000_000, help="iris forest rows")
    ap.add_argument("--mlp-rows", type=int, default=50_000)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--skip-serving", action="store_true")
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--out", default=None, help="folder for results.md / results.json")
    ap.add_argument(
        "--serving-from",
        default=None,
        help="a results.json whose serving part to keep (with --skip-serving)",
    )
    args = ap.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.servers = args.servers.split(",")
    if not args.skip_serving and shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    meta = {"machine": f"{os.cpu_count()} cores, shared with other engineers",
            "date": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip
    serving_results: list[dict] = []
    batch_results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="onnxpy-ray-bench-") as tmp:
        folder = Path(tmp)
        if not args.skip_serving:
            serving_results = serving(args, folder)
        if not args.skip_batch:
            batch_results.append(batch_one("iris_forest", args.rows, folder, args))
            if args.mlp_rows:
                batch_results.append(batch_one("mlp", args.mlp_rows, folder, args))
    if args.serving_from:
        serving_results = json.loads(Path(args.serving_from).read_text())["serving"]
    text = render(serving_results, batch_results, meta)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.md").write_text(text)
        data = {"meta": meta, "serving": serving_results, "batch": batch_results}
        (out / "results.json").write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
