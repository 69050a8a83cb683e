"""Parse a model without copying its weights through protobuf.

``ModelProto.ParseFromString`` copies every initializer's ``raw_data`` into the message, and
decoding it copies it again into an array: on a 440 MB BERT that is two full copies and two
seconds. Here the protobuf wire format of the top level is scanned by hand (only the few
fields on the path model -> graph -> initializer -> raw_data), each big ``raw_data`` payload
is copied once, straight into an aligned array, and the message is rebuilt without it: the
tensor then points at the array through :mod:`onnxpy.model.weights`. Anything unexpected in
the framing returns None and the caller falls back to the plain parser, which reports errors.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from onnx import ModelProto

from onnxpy.model.weights import InlineWeights
from onnxpy.types import ELEM_TYPE_TO_DTYPE

__all__ = ["parse_model_lean", "LEAN_MIN_BYTES", "ReadInto"]

# raw_data payloads at least this big become arrays; smaller ones stay in the message.
LEAN_MIN_BYTES = 4096

_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_DATA_TYPE = 2
_TENSOR_RAW_DATA = 9
_TENSOR_DATA_LOCATION = 14
_LEN = 2


class _Malformed(Exception):
    pass


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview, start: int, end: int):
    """Yield ``(field, wire_type, field_start, value_start, value_end_or_varint)`` in order."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, wire, field_start, pos, value
            continue
        if wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == _LEN:
            length, pos = _varint(buf, pos, end)
            value_start = pos
            pos += length
            if pos > end:
                raise _Malformed
            yield field, wire, field_start, value_start, pos
            continue
        else:  # groups (deprecated) and unknown wire types: not our job
            raise _Malformed
        if pos > end:
            raise _Malformed
        yield field, wire, field_start, pos, None


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if not value:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def _len_field(field: int, payload: bytes) -> bytes:
    return _encode_varint(field << 3 | _LEN) + _encode_varint(len(payload)) + payload


ReadInto = Callable[[int, np.ndarray], None]


def _lean_tensor(
    buf: memoryview, start: int, end: int, weights: InlineWeights, read_into: ReadInto | None
) -> bytes | None:
    """The tensor's bytes with a big raw_data moved into ``weights`` (None: leave it as is)."""
    raw = None
    data_type = 0
    kept: list[tuple[int, int]] = []
    for field, wire, fstart, vstart, vend in _fields(buf, start, end):
        if field == _TENSOR_RAW_DATA and wire == _LEN:
            if raw is not None:
                return None  # repeated raw_data (merge semantics): leave it to protobuf
            raw = (vstart, vend)
            continue
        if field == _TENSOR_DATA_TYPE and wire == 0:
            data_type = vend
        if field == _TENSOR_DATA_LOCATION:
            return None  # already external
        kept.append((fstart, vend if wire == _LEN else vstart))
    if raw is None or raw[1] - raw[0] < LEAN_MIN_BYTES:
        return None
    dtype = ELEM_TYPE_TO_DTYPE.get(data_type)
    if dtype is None or dtype.kind == "O" or dtype.itemsize == 0:
        return None
    # One copy from the file's bytes into an aligned, read-only buffer; decoded later by
    # tensors.tensor_to_array through the same dims/type checks as any external tensor.
    array = np.empty(raw[1] - raw[0], dtype=np.uint8)
    if read_into is not None:
        read_into(raw[0], array)
    else:
        array[:] = np.frombuffer(buf[raw[0] : raw[1]], dtype=np.uint8)
    array.flags.writeable = False
    head = b"".join(bytes(buf[a:b]) for a, b in kept)
    return head + weights.reference_bytes(array)


def _lean_graph(
    buf: memoryview, start: int, end: int, weights: InlineWeights, read_into: ReadInto | None
) -> bytes:
    parts: list[bytes] = []
    copy_from = start
    for field, wire, fstart, vstart, vend in _fields(buf, start, end):
        if field != _GRAPH_INITIALIZER or wire != _LEN:
            continue
        lean = _lean_tensor(buf, vstart, vend, weights, read_into)
        if lean is None:
            continue
        parts.append(bytes(buf[copy_from:fstart]))
        parts.append(_len_field(_GRAPH_INITIALIZER, lean))
        copy_from = vend
    parts.append(bytes(buf[copy_from:end]))
    return b"".join(parts)


def parse_model_lean(
    data: bytes | memoryview, read_into: ReadInto | None = None
) -> tuple[ModelProto, InlineWeights] | None:
    """``data`` parsed with big initializers held as arrays, or None to use the plain parser.

    ``read_into(offset, array)``, when given, fills ``array`` with the bytes of ``data`` at
    ``offset`` (e.g. from the file ``data`` maps: reading keeps the mapping's pages out of
    the process's resident memory, copying from the mapping would not).
    """
    buf = memoryview(data).cast("B")
    weights = InlineWeights()
    try:
        graphs = [
            (fstart, vstart, vend)
            for field, wire, fstart, vstart, vend in _fields(buf, 0, len(buf))
            if field == _MODEL_GRAPH and wire == _LEN
        ]
        if len(graphs) != 1:
            return None
        fstart, vstart, vend = graphs[0]
        graph = _lean_graph(buf, vstart, vend, weights, read_into)
    except _Malformed:
        return None
    if not weights:
        return None
    model = ModelProto()
    try:
        model.ParseFromString(
            bytes(buf[:fstart]) + _len_field(_MODEL_GRAPH, graph) + bytes(buf[vend:])
        )
    except Exception:  # noqa: BLE001 - the plain parser will say what is wrong
        return None
    return model, weights
