"""Run a model once on given or generated inputs, with any intermediate value as an output."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from onnxpy.errors import InvalidArgument
from onnxpy.tools.io import load_model_proto, make_feeds, model_inputs
from onnxpy.tools.values import ValueStats, debug_session, first_nonfinite

__all__ = ["RunResult", "run_model"]


@dataclass
class RunResult:
    feeds: dict
    outputs: dict
    seconds: float
    nonfinite: tuple[str, str, ValueStats] | None = None
    checked_nan: bool = False
    types: dict[str, str] = field(default_factory=dict)


def run_model(
    model: str | os.PathLike,
    inputs: Sequence[str] = (),
    *,
    outputs: Sequence[str] | None = None,
    batch: int = 1,
    seed: int = 0,
    check_nan: bool = False,
) -> RunResult:
    """Run ``model`` in onnxpy on ``inputs`` (:func:`onnxpy.tools.io.make_feeds` specs).

    ``outputs`` may name any value of the model, not only graph outputs; then the session runs
    the graph unoptimized so that every value of the file exists. ``check_nan`` also finds the
    first node (topological order) whose output holds NaN or Inf.
    """
    import onnxpy

    path = os.fspath(model)
    proto = load_model_proto(path, weights=False)
    feeds = make_feeds(model_inputs(proto), inputs, batch=batch, seed=seed)
    graph_outputs = [o.name for o in proto.graph.output]
    names = list(outputs) if outputs else graph_outputs
    if set(names) <= set(graph_outputs):
        session = onnxpy.InferenceSession(path)
    else:
        known = {o for n in proto.graph.node for o in n.output} | set(feeds)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InvalidArgument(f"--outputs {unknown}: no such value in the model")
        session = debug_session(path)
    t0 = time.perf_counter()
    values = session.run(names, feeds)
    seconds = time.perf_counter() - t0
    result = RunResult(feeds, dict(zip(names, values)), seconds, checked_nan=check_nan)
    if check_nan:
        result.nonfinite = first_nonfinite(path, feeds)
    return result
