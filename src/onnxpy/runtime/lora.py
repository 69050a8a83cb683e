"""LoRA adapters: onnxruntime's ``.onnx_adapter`` files, read, written and applied per run.

An adapter file holds named tensors (the low-rank weights) plus an adapter and a model version,
in onnxruntime's FlatBuffers layout (schema ``onnxruntime.adapters``, file identifier ``TORT``:
an ``Adapter`` table of format_version, adapter_version, model_version and a vector of
``Parameter`` tables of name, dims, data_type and 8-byte aligned raw_data). Files written here
load in onnxruntime and the other way round.

``RunOptions.add_active_adapter(adapter)`` makes a run feed the adapter's tensors as the
model's inputs or overridable initializers of the same names; feeds the caller passes for the
same names win. Reading and writing need the ``flatbuffers`` package (extra ``lora``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from onnxpy.errors import InvalidArgument, NoSuchFile
from onnxpy.runtime.ortvalue import OrtValue, as_host_array
from onnxpy.types import ELEM_TYPE_TO_DTYPE, elem_type_of

__all__ = ["AdapterFormat", "LoraAdapter", "adapter_feeds"]

_IDENTIFIER = b"TORT"
_FORMAT_VERSION = 1
# vtable slots, in schema order
_A_FORMAT, _A_ADAPTER, _A_MODEL, _A_PARAMS = range(4)
_P_NAME, _P_DIMS, _P_TYPE, _P_RAW = range(4)


def _flatbuffers() -> Any:
    try:
        import flatbuffers
    except ImportError as e:
        raise ImportError(
            "LoRA adapter files need the 'flatbuffers' package: pip install 'onnxpy[lora]'"
        ) from e
    return flatbuffers


def _encode(adapter_version: int, model_version: int, params: dict[str, np.ndarray]) -> bytes:
    fb = _flatbuffers()
    b = fb.Builder(1024)
    tables = []
    for name, array in params.items():
        name_off = b.CreateString(name)
        dims = np.asarray(array.shape, dtype=np.int64)
        b.StartVector(8, len(dims), 8)
        for d in reversed(dims):
            b.PrependInt64(int(d))
        dims_off = b.EndVector()
        raw = np.ascontiguousarray(array).view(np.uint8).reshape(-1).tobytes()
        b.StartVector(1, len(raw), 8)  # raw_data is force_align: 8
        b.head -= len(raw)
        b.Bytes[b.head : b.head + len(raw)] = raw
        raw_off = b.EndVector()
        b.StartObject(4)
        b.PrependUOffsetTRelativeSlot(_P_NAME, name_off, 0)
        b.PrependUOffsetTRelativeSlot(_P_DIMS, dims_off, 0)
        b.PrependInt32Slot(_P_TYPE, elem_type_of(array.dtype), 0)
        b.PrependUOffsetTRelativeSlot(_P_RAW, raw_off, 0)
        tables.append(b.EndObject())
    b.StartVector(4, len(tables), 4)
    for t in reversed(tables):
        b.PrependUOffsetTRelative(t)
    params_off = b.EndVector()
    b.StartObject(4)
    b.PrependInt32Slot(_A_FORMAT, _FORMAT_VERSION, 0)
    b.PrependInt32Slot(_A_ADAPTER, int(adapter_version), 0)
    b.PrependInt32Slot(_A_MODEL, int(model_version), 0)
    b.PrependUOffsetTRelativeSlot(_A_PARAMS, params_off, 0)
    b.Finish(b.EndObject(), file_identifier=_IDENTIFIER)
    return bytes(b.Output())


def _decode(data: bytes, what: str) -> tuple[int, int, dict[str, np.ndarray]]:
    fb = _flatbuffers()
    if len(data) < 8 or data[4:8] != _IDENTIFIER:
        raise InvalidArgument(f"{what} is not an onnxruntime adapter file (no 'TORT' identifier)")
    try:
        root = fb.table.Table(data, fb.encode.Get(fb.packer.uoffset, data, 0))

        def field(table: Any, slot: int) -> int:
            return table.Offset(4 + 2 * slot)

        def int32(table: Any, slot: int) -> int:
            o = field(table, slot)
            return table.Get(fb.number_types.Int32Flags, o + table.Pos) if o else 0

        params: dict[str, np.ndarray] = {}
        o = field(root, _A_PARAMS)
        count = root.VectorLen(o) if o else 0
        start = root.Vector(o) if o else 0
        for i in range(count):
            p = fb.table.Table(data, root.Indirect(start + 4 * i))
            name = p.String(field(p, _P_NAME) + p.Pos).decode("utf-8")
            o_dims = field(p, _P_DIMS)
            dims = p.GetVectorAsNumpy(fb.number_types.Int64Flags, o_dims).tolist() if o_dims else []
            dtype = ELEM_TYPE_TO_DTYPE.get(int32(p, _P_TYPE))
            if dtype is None or dtype.kind == "O":
                raise InvalidArgument(f"{what}: parameter '{name}' has an unsupported data type")
            o_raw = field(p, _P_RAW)
            raw = p.GetVectorAsNumpy(fb.number_types.Uint8Flags, o_raw) if o_raw else b""
            params[name] = np.frombuffer(bytes(raw), dtype=dtype).reshape(dims)
        return int32(root, _A_ADAPTER), int32(root, _A_MODEL), params
    except (IndexError, ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"{what} is not a readable adapter file: {e}") from e


def _read(path: str | os.PathLike) -> bytes:
    if not os.path.isfile(path):
        raise NoSuchFile(f"Adapter file {os.fspath(path)} does not exist")
    with open(path, "rb") as f:
        return f.read()


class AdapterFormat:
    """Build, export and read adapter files (``AdapterFormat.read_adapter(path)``)."""

    def __init__(self) -> None:
        self._adapter_version = 0
        self._model_version = 0
        self._params: dict[str, OrtValue] = {}

    def set_adapter_version(self, version: int) -> None:
        self._adapter_version = int(version)

    def set_model_version(self, version: int) -> None:
        self._model_version = int(version)

    def get_adapter_version(self) -> int:
        return self._adapter_version

    def get_model_version(self) -> int:
        return self._model_version

    def set_parameters(self, params: dict[str, Any]) -> None:
        """Tensors by name (OrtValues or arrays)."""
        out = {}
        for name, value in params.items():
            if not isinstance(value, OrtValue):
                value = OrtValue.ortvalue_from_numpy(as_host_array(value))
            if not value.is_tensor() or value.numpy().dtype.kind == "O":
                raise InvalidArgument(f"Adapter parameter '{name}' must be a numeric tensor")
            out[str(name)] = value
        self._params = out

    def get_parameters(self) -> dict[str, OrtValue]:
        return dict(self._params)

    def export_adapter(self, file_path: str | os.PathLike) -> None:
        arrays = {k: v.numpy() for k, v in self._params.items()}
        data = _encode(self._adapter_version, self._model_version, arrays)
        with open(file_path, "wb") as f:
            f.write(data)

    @staticmethod
    def read_adapter(file_path: str | os.PathLike) -> AdapterFormat:
        adapter_version, model_version, params = _decode(_read(file_path), os.fspath(file_path))
        fmt = AdapterFormat()
        fmt._adapter_version, fmt._model_version = adapter_version, model_version
        fmt._params = {k: OrtValue._wrap(v) for k, v in params.items()}
        return fmt


class LoraAdapter:
    """An adapter loaded for runs: ``LoraAdapter().Load(path)``, then
    ``run_options.add_active_adapter(adapter)``."""

    def __init__(self) -> None:
        self._params: dict[str, np.ndarray] = {}

    def Load(self, adapter_file_path: str | os.PathLike) -> None:  # noqa: N802 - onnxruntime's name
        path = os.fspath(adapter_file_path)
        _, _, self._params = _decode(_read(path), path)

    @classmethod
    def from_bytes(cls, data: bytes) -> LoraAdapter:
        adapter = cls()
        _, _, adapter._params = _decode(bytes(data), "adapter bytes")
        return adapter

    def parameters(self) -> dict[str, np.ndarray]:
        return dict(self._params)


def adapter_feeds(run_options: Any, input_feed: dict[str, Any]) -> dict[str, Any]:
    """``input_feed`` plus the active adapters' tensors (the caller's own feeds win)."""
    adapters = run_options.__dict__.get("_active_adapters") or ()
    merged: dict[str, Any] = {}
    for adapter in adapters:
        merged.update(adapter.parameters())
    merged.update(input_feed)
    return merged
