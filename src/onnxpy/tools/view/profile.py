"""Measured time per node from onnxpy's profiler (or any Chrome-trace file of onnxpy or
onnxruntime, whose node events are named ``<node>_kernel_time``)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence

import onnx

from onnxpy.errors import InvalidArgument

__all__ = ["profile_times", "trace_times"]


def trace_times(path: str | os.PathLike, skip_first_run: bool = True) -> dict[str, float]:
    """Mean milliseconds per run of each node in a Chrome-trace JSON profile."""
    try:
        with open(path) as f:
            events = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise InvalidArgument(f"{path}: not a readable profile ({e})") from e
    if isinstance(events, dict):
        events = events.get("traceEvents", [])
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    after = runs[0]["ts"] + runs[0]["dur"] if skip_first_run and len(runs) > 1 else -1
    n_runs = max(1, len(runs) - (1 if after >= 0 else 0))
    totals: dict[str, float] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") == "Node" and name.endswith("_kernel_time") and e.get("ts", 0) >= after:
            node = name[: -len("_kernel_time")]
            totals[node] = totals.get(node, 0.0) + e.get("dur", 0) / 1000.0
    return {k: v / n_runs for k, v in totals.items()}


def profile_times(
    model: onnx.ModelProto, inputs: Sequence[str] = (), batch: int = 1, runs: int = 5
) -> dict[str, float]:
    """Run ``model`` (nodes uniquely named, see :func:`onnxpy.tools.graph.named_copy`)
    ``runs`` + 1 times with onnxpy's profiler, unoptimized so that every node of the file is
    timed as itself; mean ms per run by node name, the warm-up run dropped."""
    import onnxpy
    from onnxpy.tools.io import make_feeds, model_inputs

    feeds = make_feeds(model_inputs(model), inputs, batch=batch)
    with tempfile.TemporaryDirectory(prefix="onnxpy-profile-") as tmp:
        so = onnxpy.SessionOptions()
        so.graph_optimization_level = onnxpy.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "view")
        sess = onnxpy.InferenceSession(model, so)
        for _ in range(runs + 1):
            sess.run(None, feeds)
        return trace_times(sess.end_profiling())
