"""Initializer bytes held as arrays beside the model proto instead of inside it.

A lean-parsed model (see :mod:`onnxpy.model.wire`) and a planned session keep each big weight
once, as a read-only array. The proto's tensor then says ``data_location: EXTERNAL`` with the
keys ``location: <onnxpy inline weights>`` and ``onnxpy.inline: <token>/<index>``; the token
names an :class:`InlineWeights` that the owner (the loaded model, hence the session) keeps
alive. The registry holds them weakly, so weights go when their session goes.
A proto that leaves onnxpy (saved to a file) is first given its bytes back by
:func:`materialize`.
"""

from __future__ import annotations

import itertools
import threading
import weakref

import numpy as np
from onnx import ModelProto, TensorProto

from onnxpy.errors import InvalidGraph

__all__ = [
    "InlineWeights",
    "inline_bytes",
    "is_inline",
    "materialize",
    "references",
    "INLINE_LOCATION",
]

INLINE_LOCATION = "<onnxpy inline weights>"
_KEY = "onnxpy.inline"

_registry: weakref.WeakValueDictionary[str, InlineWeights] = weakref.WeakValueDictionary()
_tokens = itertools.count()
_lock = threading.Lock()


def _point_at(tensor: TensorProto, ref: str) -> None:
    """Make ``tensor`` an inline-weights reference (its own data fields are left to the caller)."""
    del tensor.external_data[:]
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=INLINE_LOCATION)
    tensor.external_data.add(key=_KEY, value=ref)


class InlineWeights:
    """Raw little-endian bytes (uint8 arrays) of big initializers, addressed by index."""

    def __init__(self) -> None:
        with _lock:
            self.token = f"w{next(_tokens)}"
            _registry[self.token] = self
        self._buffers: dict[int, np.ndarray] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._buffers)

    def add(self, raw: np.ndarray) -> str:
        """Keep ``raw`` (uint8, read-only) and return its reference ``token/index``."""
        index = self._next
        self._next += 1
        self._buffers[index] = raw
        return f"{self.token}/{index}"

    def reference_bytes(self, raw: np.ndarray) -> bytes:
        """Serialized TensorProto fields pointing at ``raw``: appended to a tensor's other
        fields, protobuf's merge-on-parse makes them part of that tensor."""
        fields = TensorProto()
        _point_at(fields, self.add(raw))
        return fields.SerializeToString()

    def adopt(self, tensor: TensorProto, array: np.ndarray) -> None:
        """Point ``tensor`` at ``array``'s bytes instead of its own ``raw_data``."""
        raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        if raw.flags.writeable:
            raw = raw.view()
            raw.flags.writeable = False
        tensor.ClearField("raw_data")
        _point_at(tensor, self.add(raw))

    def keep_only(self, refs: set[str]) -> None:
        """Release every buffer not named in ``refs`` (weights a pass replaced)."""
        for index in list(self._buffers):
            if f"{self.token}/{index}" not in refs:
                del self._buffers[index]

    def buffer(self, index: int) -> np.ndarray | None:
        return self._buffers.get(index)


def _reference(tensor: TensorProto) -> str | None:
    if tensor.data_location != TensorProto.EXTERNAL:
        return None
    for e in tensor.external_data:
        if e.key == _KEY:
            return e.value
    return None


def is_inline(tensor: TensorProto) -> bool:
    return _reference(tensor) is not None


def inline_bytes(tensor: TensorProto) -> np.ndarray | None:
    """The uint8 bytes of an inline tensor (None: the tensor is not inline)."""
    ref = _reference(tensor)
    if ref is None:
        return None
    token, _, index = ref.partition("/")
    owner = _registry.get(token)
    raw = owner.buffer(int(index)) if owner is not None and index.isdigit() else None
    if raw is None:
        raise InvalidGraph(
            f"Tensor '{tensor.name}' refers to onnxpy inline weights '{ref}' that were released"
        )
    return raw


def references(model: ModelProto) -> set[str]:
    """The inline references the main graph's initializers still use."""
    return {r for t in model.graph.initializer if (r := _reference(t)) is not None}


def materialize(model: ModelProto) -> ModelProto:
    """A copy of ``model`` whose inline tensors carry their bytes again (for saving)."""
    out = ModelProto()
    out.CopyFrom(model)
    for t in out.graph.initializer:
        raw = inline_bytes(t)
        if raw is None:
            continue
        del t.external_data[:]
        t.ClearField("data_location")
        t.raw_data = raw.tobytes()
    return out
