"""The run loop. It never names an operator: steps carry their kernels and slots."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from onnxpy.errors import Fail, OnnxpyError, Terminated

__all__ = ["compile_steps", "execute", "execute_profiled", "node_error", "current_stop"]

# NumPy's floating-point error state (NumPy >= 2: a context variable holding an opaque
# object). np.errstate(all="ignore") costs ~1.6 us per run, most of it building that object
# anew; setting a prebuilt one costs ~0.5 us.
try:
    from numpy._core._ufunc_config import _extobj_contextvar as _FP_STATE
except ImportError:  # pragma: no cover - NumPy 1.x

    class _PerThreadErrors:
        """NumPy 1.x keeps the error state per thread; np.seterr returns the previous one."""

        def get(self) -> None:
            return None

        def set(self, _: Any) -> dict[str, str]:
            return np.seterr(all="ignore")

        def reset(self, previous: dict[str, str]) -> None:
            np.seterr(**previous)

    _FP_STATE = _PerThreadErrors()
# Each error state met -> the same state with every error ignored (what np.errstate makes).
_FP_IGNORING: dict[Any, Any] = {}


def _ignoring(state: Any) -> Any:
    """``state`` with every floating-point error ignored, built by np.errstate once."""
    with np.errstate(all="ignore"):
        found = _FP_STATE.get()
    if len(_FP_IGNORING) > 64:  # states made by callers' own errstate blocks: keep a few
        _FP_IGNORING.clear()
    _FP_IGNORING[state] = _FP_IGNORING[found] = found
    return found


# The stop flag of the run in progress on this thread (RunOptions.terminate), so that
# subgraphs (Loop, Scan and If bodies) run through execute() too and a long loop can be stopped.
_run_state = threading.local()


def current_stop() -> Callable[[], bool] | None:
    """The terminate check of the run this thread is in, if it was given RunOptions."""
    return getattr(_run_state, "stop", None)


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
    outer = getattr(_run_state, "stop", None)
    _run_state.stop = should_stop
    try:
        with np.errstate(all="ignore"):
            for step in steps:
                if should_stop is not None and should_stop():
                    raise Terminated("Exiting due to terminate flag being set to true.")
                res = step.fn(*[values[i] for i in step.inputs])
                if type(res) is tuple:
                    for pos, s in step.outputs:
                        values[s] = res[pos]
                elif step.outputs:
                    values[step.outputs[0][1]] = res
                for s in step.free:
                    values[s] = None
    except Terminated:
        raise
    except Exception as e:
        if step is None:
            raise
        raise node_error(step, e) from e
    finally:
        _run_state.stop = outer


def compile_steps(steps: Sequence[Any]) -> Callable[[list[Any]], None]:
    """``run(values)``: :func:`execute` without a stop flag, as one straight-line function.

    The generic loop spends about as long per node on bookkeeping (argument lists, result
    unpacking, freeing) as a small ufunc takes; generated code indexes the slot list
    directly, so per-node overhead is a call and an assignment. A failing kernel is found
    from the traceback's line number, so nothing is recorded per step on the hot path.
    """
    steps = list(steps)
    names: dict[str, Any] = {"__builtins__": {}, "tuple": tuple}
    lines = ["def run(v):"]
    step_at_line: dict[int, Any] = {}
    for k, step in enumerate(steps):
        fn = f"f{k}"
        names[fn] = step.fn
        call = f"{fn}({', '.join(f'v[{i}]' for i in step.inputs)})"
        step_at_line[len(lines) + 1] = step
        outs = step.outputs
        if not outs:
            lines.append(f"    {call}")
        else:
            lines.append(f"    r = {call}")
            first = f"v[{outs[0][1]}] = r"
            if len(outs) == 1 and outs[0][0] == 0:
                lines.append(f"    {first}[0] if r.__class__ is tuple else r")
            else:
                unpack = "; ".join(f"v[{s}] = r[{pos}]" for pos, s in outs)
                lines.append(f"    if r.__class__ is tuple: {unpack}")
                lines.append(f"    else: {first}")
        if step.free:
            lines.append("    " + " = ".join(f"v[{s}]" for s in step.free) + " = None")
    lines.append("    return None")
    code = compile("\n".join(lines), "<onnxpy plan>", "exec")
    exec(code, names)
    body = names["run"]
    body_code = body.__code__

    state, ignoring, known = _FP_STATE, _ignoring, _FP_IGNORING

    def run(values: list[Any]) -> None:
        current = state.get()
        token = state.set(known.get(current) or ignoring(current))
        try:
            body(values)
        except Terminated:
            raise
        except Exception as e:
            tb = e.__traceback__
            step = None
            while tb is not None:
                if tb.tb_frame.f_code is body_code:
                    step = step_at_line.get(tb.tb_lineno)
                tb = tb.tb_next
            if step is None:
                raise
            raise node_error(step, e) from e
        finally:
            state.reset(token)

    return run


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
