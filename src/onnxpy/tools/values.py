"""Intermediate values from onnxpy, a chunk at a time, and their statistics.

Exposing every intermediate of a big model at once holds them all in memory together (BERT-base
has ~1,000 values per run). Tools instead ask for consecutive chunks of values in topological
order, keep only small statistics, and drop the arrays before the next chunk.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import onnx

from onnxpy.tools.graph import GraphIndex

__all__ = ["ValueStats", "value_stats", "debug_session", "iter_node_values", "first_nonfinite"]


@dataclass
class ValueStats:
    """Summary of one value: enough to see a blow-up, a NaN or a wrong dtype at a glance."""

    name: str
    dtype: str
    shape: list[int]
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    nan: int = 0
    inf: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        extra = f" nan={self.nan}" if self.nan else ""
        extra += f" inf={self.inf}" if self.inf else ""
        if self.min is None:
            return f"{self.name}: {self.dtype}{self.shape}{extra}"
        return (
            f"{self.name}: {self.dtype}{self.shape} min={self.min:.4g} max={self.max:.4g} "
            f"mean={self.mean:.4g} std={self.std:.4g}{extra}"
        )


def _finite_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def value_stats(name: str, value: object) -> ValueStats:
    """Statistics of a tensor (min/max/mean/std over finite elements; NaN and Inf counted)."""
    if not isinstance(value, np.ndarray):
        return ValueStats(name, type(value).__name__, [])
    stats = ValueStats(name, str(value.dtype), list(value.shape))
    if value.size == 0 or value.dtype.kind not in "fiub":
        return stats
    x = value.astype(np.float64, copy=False)
    finite = np.isfinite(x)
    stats.nan = int(np.isnan(x).sum())
    stats.inf = int(np.isinf(x).sum())
    if stats.nan or stats.inf:
        x = x[finite]
    if x.size:
        stats.min, stats.max = _finite_float(x.min()), _finite_float(x.max())
        stats.mean, stats.std = _finite_float(x.mean()), _finite_float(x.std())
    return stats


def debug_session(model: str | os.PathLike | onnx.ModelProto):
    """An onnxpy session that can return any value of the model as written.

    Graph optimizations may fold or fuse intermediate values away, so the session runs the
    graph unoptimized (``ORT_DISABLE_ALL``): every value name of the file exists.
    """
    import onnxpy

    so = onnxpy.SessionOptions()
    so.graph_optimization_level = onnxpy.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxpy.InferenceSession(model, so)


def iter_node_values(
    session,
    index: GraphIndex,
    feeds: Mapping[str, object],
    chunk_values: int = 128,
) -> Iterator[tuple[int, dict[str, object]]]:
    """(node index, {output name: value}) for every node in topological order, computed in
    chunks of about ``chunk_values`` values so that only one chunk is alive at a time."""
    for group in _node_chunks(index, chunk_values):
        names = [n for _, outs in group for n in outs]
        values = dict(zip(names, session.run(names, dict(feeds)))) if names else {}
        for node, outs in group:
            yield node, {n: values[n] for n in outs}
        del values


def _node_chunks(index: GraphIndex, chunk_values: int) -> Iterator[list[tuple[int, list[str]]]]:
    """Consecutive groups of nodes with about ``chunk_values`` outputs (a node is never split)."""
    group: list[tuple[int, list[str]]] = []
    count = 0
    for node, outs in index.node_values():
        group.append((node, outs))
        count += len(outs)
        if count >= chunk_values:
            yield group
            group, count = [], 0
    if group:
        yield group


def node_chunks(index: GraphIndex, chunk_values: int) -> list[list[tuple[int, list[str]]]]:
    """The chunks :func:`iter_node_values` uses, for other runtimes to fetch the same values."""
    return list(_node_chunks(index, chunk_values))


def first_nonfinite(
    model: str | os.PathLike | onnx.ModelProto,
    feeds: Mapping[str, object],
    chunk_values: int = 128,
) -> tuple[str, str, ValueStats] | None:
    """The first node (topological order) whose output holds NaN or Inf: (label, op, stats).

    Graph inputs are checked first; None when every value is finite.
    """
    for name, value in feeds.items():
        s = value_stats(name, value)
        if s.nan or s.inf:
            return f"<graph input {name}>", "", s
    from onnxpy.tools.io import load_model_proto

    proto = load_model_proto(model, weights=False)
    index = GraphIndex.of(proto)
    session = debug_session(model)
    for node, values in iter_node_values(session, index, feeds, chunk_values):
        for name, value in values.items():
            s = value_stats(name, value)
            if s.nan or s.inf:
                return index.label(node), index.graph.node[node].op_type, s
    return None
