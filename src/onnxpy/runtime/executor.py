"""The run loop. It never names an operator: steps carry their kernels and slots."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from onnxpy.errors import Fail, OnnxpyError, RuntimeException

__all__ = ["execute", "execute_profiled", "node_error"]


def node_error(step: Any, exc: BaseException) -> OnnxpyError:
    """Wrap a kernel failure so that it names the node and operator, keeping onnxpy's class."""
    op = f"{step.domain + '::' if step.domain else ''}{step.op_type}"
    msg = f"Node '{step.name}' (op {op}) failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, OnnxpyError):
        err = type(exc)(msg)
    else:
        err = Fail(msg)
    err.__cause__ = exc
    return err


def execute(
    steps: Sequence[Any], values: list[Any], should_stop: Callable[[], bool] | None = None
) -> None:
    """Run ``steps`` over the slot list ``values`` in place.

    Floating-point exceptions are ONNX semantics (inf, nan), not warnings: they are silenced
    once for the whole run rather than inside every kernel.
    """
    step = None
    try:
        with np.errstate(all="ignore"):
            for step in steps:
                if should_stop is not None and should_stop():
                    raise RuntimeException("Exiting due to terminate flag being set to true.")
                res = step.fn(*[values[i] for i in step.inputs])
                if type(res) is tuple:
                    for pos, s in step.outputs:
                        values[s] = res[pos]
                elif step.outputs:
                    values[step.outputs[0][1]] = res
                for s in step.free:
                    values[s] = None
    except RuntimeException:
        raise
    except Exception as e:
        if step is None:
            raise
        raise node_error(step, e) from e


def execute_profiled(
    steps: Sequence[Any], values: list[Any], record: Callable[[Any, float, float, list, list], None]
) -> None:
    """Like :func:`execute`, reporting each step's start and duration (seconds) to ``record``."""
    with np.errstate(all="ignore"):
        _execute_profiled(steps, values, record)


def _execute_profiled(
    steps: Sequence[Any], values: list[Any], record: Callable[[Any, float, float, list, list], None]
) -> None:
    for step in steps:
        args = [values[i] for i in step.inputs]
        t0 = time.perf_counter()
        try:
            res = step.fn(*args)
        except Exception as e:
            raise node_error(step, e) from e
        t1 = time.perf_counter()
        outs = []
        if type(res) is tuple:
            for pos, s in step.outputs:
                values[s] = res[pos]
                outs.append(res[pos])
        elif step.outputs:
            values[step.outputs[0][1]] = res
            outs.append(res)
        record(step, t0, t1 - t0, args, outs)
        for s in step.free:
            values[s] = None
