"""Sequence and optional operators.

A sequence is a Python ``list`` of arrays and an empty optional is ``None``. Kernels always
build a new list: an input sequence may be shared with other consumers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxpy.kernels.registry import register


def _position(position: Any, size: int, inclusive_end: bool, op: str) -> int:
    """A scalar position normalized to [0, size) (or [0, size] when ``inclusive_end``)."""
    arr = np.asarray(position)
    if arr.size != 1:
        raise ValueError(f"{op}: position must be a scalar, got shape {arr.shape}")
    p = int(arr.reshape(-1)[0])
    upper = size if inclusive_end else size - 1
    if not -size <= p <= upper:
        raise ValueError(f"{op}: position {p} out of range for a sequence of {size} tensors")
    return p + size if p < 0 else p


def _check_list(seq: Any, op: str) -> list[Any]:
    if not isinstance(seq, list):
        raise TypeError(f"{op}: expected a sequence, got {type(seq).__name__}")
    return seq


@register("SequenceConstruct", since=11)
def sequence_construct(*inputs: Any) -> list[Any]:
    dtypes = {np.asarray(x).dtype for x in inputs}
    if len(dtypes) > 1:
        raise TypeError(f"SequenceConstruct: tensors of different types {sorted(map(str, dtypes))}")
    return list(inputs)


@register("SequenceEmpty", since=11)
def sequence_empty(*, dtype=1) -> list[Any]:
    """An empty sequence; the element type (``dtype``) has no runtime trace in a list."""
    return []


@register("SequenceAt", since=11)
def sequence_at(seq, position, /):
    seq = _check_list(seq, "SequenceAt")
    return seq[_position(position, len(seq), False, "SequenceAt")]


@register("SequenceInsert", since=11)
def sequence_insert(seq, tensor, position=None, /) -> list[Any]:
    seq = _check_list(seq, "SequenceInsert")
    if seq and np.asarray(seq[0]).dtype != np.asarray(tensor).dtype:
        raise TypeError(
            f"SequenceInsert: tensor of type {np.asarray(tensor).dtype} into a sequence of "
            f"{np.asarray(seq[0]).dtype}"
        )
    out = list(seq)
    if position is None:
        out.append(tensor)
    else:
        out.insert(_position(position, len(seq), True, "SequenceInsert"), tensor)
    return out


@register("SequenceErase", since=11)
def sequence_erase(seq, position=None, /) -> list[Any]:
    seq = _check_list(seq, "SequenceErase")
    if not seq:
        raise ValueError("SequenceErase: the sequence is empty")
    p = len(seq) - 1 if position is None else _position(position, len(seq), False, "SequenceErase")
    return seq[:p] + seq[p + 1 :]


@register("SequenceLength", since=11)
def sequence_length(seq, /) -> np.ndarray:
    return np.array(len(_check_list(seq, "SequenceLength")), dtype=np.int64)


@register("SequenceMap", since=17, subgraphs=("body",))
def sequence_map(seq, /, *additional, body=None):
    """Apply ``body`` per position; extra sequence inputs are indexed, tensors passed whole."""
    if body is None:
        raise ValueError("SequenceMap needs a body graph")
    seq = _check_list(seq, "SequenceMap")
    n = len(seq)
    for j, extra in enumerate(additional):
        if isinstance(extra, list) and len(extra) != n:
            raise ValueError(
                f"SequenceMap: additional sequence {j} has {len(extra)} elements, expected {n}"
            )
    outputs: list[list[Any]] = [[] for _ in range(body.num_outputs)]
    for i in range(n):
        args = [extra[i] if isinstance(extra, list) else extra for extra in additional]
        for acc, v in zip(outputs, body(seq[i], *args), strict=False):
            acc.append(v)
    return tuple(outputs)


def _split_sizes(split: Any, length: int) -> list[int]:
    split = np.asarray(split)
    if split.ndim == 0:
        chunk = int(split)
        if chunk <= 0:
            raise ValueError(f"SplitToSequence: split must be positive, got {chunk}")
        full, rest = divmod(length, chunk)
        return [chunk] * full + ([rest] if rest else [])
    if split.ndim != 1:
        raise ValueError(f"SplitToSequence: split must be a scalar or 1-D, got shape {split.shape}")
    sizes = [int(s) for s in split]
    if any(s < 0 for s in sizes) or sum(sizes) != length:
        raise ValueError(f"SplitToSequence: split {sizes} does not add up to {length}")
    return sizes


@register("SplitToSequence", since=(11, 24))
def split_to_sequence(x, split=None, /, *, axis=0, keepdims=1) -> list[np.ndarray]:
    x = np.asarray(x)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"SplitToSequence: axis {axis} out of range for rank {x.ndim}")
    axis = axis + x.ndim if axis < 0 else axis
    length = x.shape[axis]
    if split is None:
        parts = np.split(x, length, axis=axis) if length else []
        return parts if keepdims else [np.squeeze(p, axis=axis) for p in parts]
    sizes = _split_sizes(split, length)
    if not sizes:
        return []
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


@register("ConcatFromSequence", since=11)
def concat_from_sequence(seq, /, *, axis=None, new_axis=0) -> np.ndarray:
    if axis is None:
        raise ValueError("ConcatFromSequence needs the axis attribute")
    seq = _check_list(seq, "ConcatFromSequence")
    if not seq:
        raise ValueError("ConcatFromSequence: the sequence is empty")
    arrays = [np.asarray(t) for t in seq]
    if new_axis:
        rank = arrays[0].ndim + 1
        if not -rank <= axis < rank:
            raise ValueError(f"ConcatFromSequence: axis {axis} out of range for new rank {rank}")
        return np.stack(arrays, axis=axis)
    rank = arrays[0].ndim
    if not -rank <= axis < rank:
        raise ValueError(f"ConcatFromSequence: axis {axis} out of range for rank {rank}")
    return np.concatenate(arrays, axis=axis)


@register("Optional", since=(15, 28))
def optional(x=None, /, *, type=None):  # noqa: A002 - the ONNX attribute is named 'type'
    """Wrap a value as an optional; no input means an empty optional (``None``)."""
    if x is None and type is None:
        raise ValueError("Optional without input needs the 'type' attribute")
    return x


@register("OptionalHasElement", since=(15, 18, 28))
def optional_has_element(x=None, /) -> np.ndarray:
    return np.array(x is not None, dtype=np.bool_)


@register("OptionalGetElement", since=(15, 18, 28))
def optional_get_element(x, /):
    if x is None:
        raise ValueError("OptionalGetElement: the optional is empty")
    return x
