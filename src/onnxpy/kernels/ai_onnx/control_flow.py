"""Control flow: If, Loop, Scan.

Subgraph attributes arrive as ``BoundGraph`` callables (``body(*inputs) -> list``) with their
outer-scope values already bound. Loop and Scan are factories so that they know the node's
declared output types: a loop that runs zero times must still return correctly typed (empty)
scan outputs, and nothing in the iteration itself can tell what those types are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from onnx import TypeProto

from onnxpy.kernels.registry import NodeInfo, register
from onnxpy.types import dtype_of

_SINCE = (1, 11, 13, 16, 19, 21, 23, 24, 25)
_SCAN_SINCE = (9, 11, 16, 19, 21, 23, 24, 25)


def _scalar_bool(value: Any, what: str) -> bool:
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"{what} must hold exactly one element, got shape {arr.shape}")
    return bool(arr.reshape(-1)[0])


def _scalar_int(value: Any, what: str) -> int:
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"{what} must hold exactly one element, got shape {arr.shape}")
    return int(arr.reshape(-1)[0])


def _tensor_type(tp: TypeProto | None) -> tuple[np.dtype, list[int | None] | None] | None:
    """(dtype, dims or None when the rank is unknown) of a tensor TypeProto, else None."""
    if tp is None or tp.WhichOneof("value") != "tensor_type":
        return None
    tt = tp.tensor_type
    if not tt.elem_type:
        return None
    dims = None
    if tt.HasField("shape"):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    return dtype_of(tt.elem_type), dims


def _declared(types: Sequence[Any], index: int) -> tuple[np.dtype, list[int | None] | None] | None:
    if types is None or index >= len(types):
        return None
    return _tensor_type(types[index])


def _blank(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A filled array used for padding: zeros, or empty strings for string tensors."""
    if dtype == np.dtype(object):
        return np.full(shape, "", dtype=object)
    return np.zeros(shape, dtype=dtype)


def _empty_stacked(
    node_type: tuple[np.dtype, list[int | None] | None] | None,
    body_type: tuple[np.dtype, list[int | None] | None] | None,
    axis: int = 0,
) -> np.ndarray:
    """An empty scan output (zero iterations) typed from the node's or the body's declaration.

    ``node_type`` describes the stacked output (iteration axis included), ``body_type`` one
    element. Unknown dimensions become 0: the array is empty either way.
    """
    dtype = np.dtype(np.float32)
    dims: list[int | None] | None = None
    if node_type is not None:
        dtype, dims = node_type
        if dims is not None:
            dims = list(dims)
            axis = axis + len(dims) if axis < 0 else axis
            if 0 <= axis < len(dims):
                dims[axis] = 0
    if dims is None and body_type is not None:
        dtype, elem = body_type
        if elem is not None:
            rank = len(elem) + 1
            axis = axis + rank if axis < 0 else axis
            dims = list(elem)
            dims.insert(min(max(axis, 0), len(elem)), 0)
    if dims is None:
        dims = [0]
    return np.empty(tuple(d or 0 for d in dims), dtype=dtype)


def _body_types(body: Any) -> Sequence[Any] | None:
    """The body graph's declared output types, when the engine exposes them."""
    return getattr(body, "output_types", None)


# -- If ------------------------------------------------------------------------------------


@register("If", since=_SINCE, subgraphs=("then_branch", "else_branch"))
def if_(cond, /, *, then_branch=None, else_branch=None):
    """Run one branch; its outputs (tensors, sequences or optionals) are the node's."""
    branch = then_branch if _scalar_bool(cond, "If condition") else else_branch
    if branch is None:
        raise ValueError("If needs both then_branch and else_branch")
    return tuple(branch())


# -- Loop ----------------------------------------------------------------------------------


def _run_loop(
    body: Callable[..., list[Any]],
    trip_count: Any,
    cond: Any,
    initial: Sequence[Any],
) -> tuple[list[Any], list[list[Any]], int]:
    """Iterate the body; returns (final carried values, scan values per output, iterations)."""
    max_trip = None if trip_count is None else _scalar_int(trip_count, "Loop trip count M")
    keep = True if cond is None else _scalar_bool(cond, "Loop condition")
    # The spec ignores the body's condition when the cond input is omitted; with M omitted
    # too that would never end, so the condition is honoured in that case.
    use_cond = cond is not None or trip_count is None
    carried = list(initial)
    n = len(carried)
    scans: list[list[Any]] = []
    i = 0
    while keep and (max_trip is None or i < max_trip):
        outs = body(np.array(i, dtype=np.int64), np.array(keep, dtype=np.bool_), *carried)
        if len(outs) < 1 + n:
            raise ValueError(f"Loop body returned {len(outs)} values, expected at least {1 + n}")
        if use_cond:
            keep = _scalar_bool(outs[0], "Loop body condition")
        carried = list(outs[1 : 1 + n])
        if not scans:
            scans = [[] for _ in outs[1 + n :]]
        for acc, v in zip(scans, outs[1 + n :], strict=False):
            acc.append(v)
        i += 1
    return carried, scans, i


def _stack_scan(values: list[Any], what: str) -> np.ndarray:
    try:
        return np.stack([np.asarray(v) for v in values])
    except ValueError as e:
        raise ValueError(f"{what} changes shape across iterations: {e}") from e


@register("Loop", since=_SINCE, factory=True, subgraphs=("body",))
def loop(info: NodeInfo, *, body=None) -> Callable[..., Any]:
    """Loop with optional trip count and condition; scan outputs stack on a new axis 0."""
    n_carried = max(info.num_inputs - 2, 0)
    out_types = info.output_types

    def run(trip_count=None, cond=None, /, *initial, body=None):
        if body is None:
            raise ValueError("Loop needs a body graph")
        carried, scans, iterations = _run_loop(body, trip_count, cond, initial)
        k = max(body.num_outputs - 1 - n_carried, 0)
        results: list[Any] = list(carried)
        if iterations and scans:
            results += [_stack_scan(v, f"Loop scan output {j}") for j, v in enumerate(scans)]
        else:
            body_types = _body_types(body)
            for j in range(k):
                results.append(
                    _empty_stacked(
                        _declared(out_types, n_carried + j),
                        _declared(body_types, 1 + n_carried + j) if body_types else None,
                    )
                )
        return tuple(results)

    return run


# -- Scan ----------------------------------------------------------------------------------


def _axes(values: list[int] | None, count: int, what: str) -> list[int]:
    if values is None:
        return [0] * count
    if len(values) != count:
        raise ValueError(f"Scan {what} has {len(values)} entries, expected {count}")
    return [int(v) for v in values]


def _scan_outputs(
    collected: list[list[Any]],
    out_axes: list[int],
    out_dirs: list[int],
    n_state: int,
    out_types: Sequence[Any],
    body: Any,
) -> list[np.ndarray]:
    """Stack each scan output's per-iteration values along its axis (prepending if reversed)."""
    results = []
    body_types = _body_types(body)
    for j, values in enumerate(collected):
        axis = out_axes[j]
        if not values:
            results.append(
                _empty_stacked(
                    _declared(out_types, n_state + j),
                    _declared(body_types, n_state + j) if body_types else None,
                    axis,
                )
            )
            continue
        if out_dirs[j]:
            values = values[::-1]
        try:
            results.append(np.stack([np.asarray(v) for v in values], axis=axis))
        except ValueError as e:
            raise ValueError(f"Scan output {j}: {e}") from e
    return results


@register("Scan", since=_SCAN_SINCE, factory=True, subgraphs=("body",))
def scan(
    info: NodeInfo,
    *,
    body=None,
    num_scan_inputs=None,
    scan_input_axes=None,
    scan_input_directions=None,
    scan_output_axes=None,
    scan_output_directions=None,
) -> Callable[..., Any]:
    """Scan (opset 9+): iterate scan inputs along their axes, carrying state variables."""
    if num_scan_inputs is None:
        raise ValueError("Scan needs the num_scan_inputs attribute")
    m = int(num_scan_inputs)
    n_state = info.num_inputs - m
    if n_state < 0:
        raise ValueError(f"Scan has {info.num_inputs} inputs but num_scan_inputs={m}")
    in_axes = _axes(scan_input_axes, m, "scan_input_axes")
    in_dirs = _axes(scan_input_directions, m, "scan_input_directions")
    out_types = info.output_types

    def run(*inputs, body=None):
        if body is None:
            raise ValueError("Scan needs a body graph")
        k = body.num_outputs - n_state
        out_axes = _axes(scan_output_axes, k, "scan_output_axes")
        out_dirs = _axes(scan_output_directions, k, "scan_output_directions")
        states = list(inputs[:n_state])
        seqs = []
        for x, ax in zip(inputs[n_state:], in_axes, strict=True):
            x = np.asarray(x)
            seqs.append(np.moveaxis(x, ax + x.ndim if ax < 0 else ax, 0))
        lengths = {s.shape[0] for s in seqs}
        if len(lengths) > 1:
            raise ValueError(f"Scan inputs have different sequence lengths {sorted(lengths)}")
        length = lengths.pop() if lengths else 0
        collected: list[list[Any]] = [[] for _ in range(k)]
        for t in range(length):
            elems = [s[length - 1 - t] if d else s[t] for s, d in zip(seqs, in_dirs, strict=True)]
            outs = body(*states, *elems)
            states = list(outs[:n_state])
            for acc, v in zip(collected, outs[n_state:], strict=False):
                acc.append(v)
        scans = _scan_outputs(collected, out_axes, out_dirs, n_state, out_types, body)
        return tuple(states + scans)

    return run


def _scan8_batch(
    body: Callable[..., list[Any]],
    states: list[Any],
    scans: list[np.ndarray],
    dirs: list[int],
    length: int,
    n_state: int,
) -> tuple[list[Any], list[list[Any]]]:
    """One batch entry of opset-8 Scan: ``length`` iterations over axis 0 of each scan input."""
    collected: list[list[Any]] = []
    for t in range(length):
        elems = [x[length - 1 - t] if d else x[t] for x, d in zip(scans, dirs, strict=True)]
        outs = body(*states, *elems)
        states = list(outs[:n_state])
        if not collected:
            collected = [[] for _ in outs[n_state:]]
        for acc, v in zip(collected, outs[n_state:], strict=False):
            acc.append(np.asarray(v))
    return states, collected


@register("Scan", since=8, factory=True, subgraphs=("body",))
def scan8(
    info: NodeInfo, *, body=None, num_scan_inputs=None, directions=None
) -> Callable[..., Any]:
    """Scan (opset 8): batch axis 0, sequence axis 1, optional per-batch sequence lengths.

    Scan outputs are padded (zeros, or empty strings) past each entry's sequence length.
    """
    if num_scan_inputs is None:
        raise ValueError("Scan needs the num_scan_inputs attribute")
    m = int(num_scan_inputs)
    n_state = info.num_inputs - 1 - m
    if n_state < 0:
        raise ValueError(f"Scan has {info.num_inputs} inputs but num_scan_inputs={m}")
    dirs = _axes(directions, m, "directions")
    out_types = info.output_types

    def run(sequence_lens=None, /, *inputs, body=None):
        if body is None:
            raise ValueError("Scan needs a body graph")
        k = body.num_outputs - n_state
        init = [np.asarray(v) for v in inputs[:n_state]]
        scans = [np.asarray(v) for v in inputs[n_state:]]
        ref = scans[0] if scans else init[0]
        batch = ref.shape[0]
        max_len = scans[0].shape[1] if scans else 0
        if sequence_lens is None:
            lens = [max_len] * batch
        else:
            lens = [int(v) for v in np.asarray(sequence_lens).reshape(-1)]
            if len(lens) != batch or any(v < 0 or v > max_len for v in lens):
                raise ValueError(f"Scan sequence_lens {lens} invalid for batch {batch}")
        finals: list[list[Any]] = [[] for _ in range(n_state)]
        per_batch: list[list[list[Any]]] = []
        for b in range(batch):
            st, coll = _scan8_batch(
                body, [s[b] for s in init], [x[b] for x in scans], dirs, lens[b], n_state
            )
            for acc, v in zip(finals, st, strict=False):
                acc.append(np.asarray(v))
            per_batch.append(coll)
        states = []
        for j, acc in enumerate(finals):
            states.append(np.stack(acc) if acc else _empty_stacked(_declared(out_types, j), None))
        outputs = [_pad_scan8(per_batch, j, batch, max_len, out_types, n_state) for j in range(k)]
        return tuple(states + outputs)

    return run


def _pad_scan8(
    per_batch: list[list[list[Any]]],
    j: int,
    batch: int,
    max_len: int,
    out_types: Sequence[Any],
    n_state: int,
) -> np.ndarray:
    """Assemble scan output ``j`` as [batch, max_len, ...], padding short sequences."""
    sample = next((c[j][0] for c in per_batch if c and c[j]), None)
    if sample is None:
        declared = _declared(out_types, n_state + j)
        if declared is not None and declared[1] is not None:
            dtype, dims = declared
            shape = [batch, max_len] + [d or 0 for d in dims[2:]]
            return _blank(tuple(shape), dtype)
        return _empty_stacked(declared, None)
    out = _blank((batch, max_len) + sample.shape, sample.dtype)
    for b, coll in enumerate(per_batch):
        if coll and coll[j]:
            out[b, : len(coll[j])] = np.stack(coll[j])
    return out
