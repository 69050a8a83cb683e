"""What SessionOptions says about the model itself, applied between loading and optimizing.

onnxruntime lets a caller change a model through its session options: replace initializers
(``add_initializer``), supply external initializers that are not on disk
(``add_external_initializers``, ``add_external_initializers_from_files_in_memory``), fix free
dimensions (``add_free_dimension_override_by_name`` / ``_by_denotation``), and, when the
environment says ``ORT_LOAD_CONFIG_FROM_MODEL=1``, take session options from the model's
``ort_config`` metadata entry. This module records those requests (:class:`ModelOverrides`,
kept on the SessionOptions, runtime/model_overrides.py) and applies them to the loaded proto
(:func:`apply_session_setup`);
:func:`save_optimized_model` writes ``optimized_model_filepath`` with the external-initializer
settings onnxruntime documents.

Replacement tensors are copied into the model: onnxpy does not keep the caller's buffer.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto, TensorProto, numpy_helper

from onnxpy.errors import InvalidArgument
from onnxpy.kernels.threads import apply_intra_op_threads
from onnxpy.model.loader import LoadedModel
from onnxpy.model.save import save_model_to
from onnxpy.model.weights import is_inline
from onnxpy.runtime.logs import log
from onnxpy.runtime.memory import keep_freed_memory
from onnxpy.runtime.model_overrides import ModelOverrides
from onnxpy.types import ELEM_TYPE_TO_DTYPE

__all__ = ["apply_session_setup", "save_optimized_model"]

EXTERNAL_FILE_KEY = "session.optimized_model_external_initializers_file_name"
EXTERNAL_MIN_SIZE_KEY = "session.optimized_model_external_initializers_min_size_in_bytes"
_DEFAULT_MIN_SIZE = 1024
_ORT_CONFIG_KEY = "ort_config"


# -- ort_config -------------------------------------------------------------------------------
def _apply_ort_config(model: ModelProto, options: Any) -> None:
    from onnxpy.runtime.options import ExecutionMode, GraphOptimizationLevel

    text = next((p.value for p in model.metadata_props if p.key == _ORT_CONFIG_KEY), None)
    if text is None:
        return
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"Json stored in the `ort_config` key cannot be parsed: {e}") from e
    settings = config.get("session_options", {}) if isinstance(config, dict) else {}
    log.info("Session options from the model's ort_config: %s", settings)
    for key, value in settings.items():
        if key not in (
            "intra_op_num_threads",
            "inter_op_num_threads",
            "execution_mode",
            "graph_optimization_level",
            "enable_profiling",
        ):
            log.info("Ignoring unsupported session option in ORT config: %s", key)
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"{key} option in the model file must be an integer")
        try:
            if key in ("intra_op_num_threads", "inter_op_num_threads"):
                if value < 0:
                    raise ValueError(value)
                setattr(options, key, value)
            elif key == "execution_mode":
                options.execution_mode = ExecutionMode(value)
            elif key == "graph_optimization_level":
                options.graph_optimization_level = GraphOptimizationLevel(value)
            elif value in (0, 1):
                options.enable_profiling = bool(value)
            else:
                raise ValueError(value)
        except ValueError:
            raise InvalidArgument(f"Unsupported value for {key} in ORT config: {value}") from None
    if "intra_op_num_threads" in settings:
        apply_intra_op_threads(int(options.intra_op_num_threads or 0))


# -- initializers -----------------------------------------------------------------------------
def _declared(tensor: TensorProto) -> tuple[np.dtype, tuple[int, ...]]:
    return ELEM_TYPE_TO_DTYPE[tensor.data_type], tuple(int(d) for d in tensor.dims)


def _replace(tensor: TensorProto, array: np.ndarray, what: str) -> None:
    dtype, dims = _declared(tensor)
    if array.dtype != dtype or tuple(array.shape) != dims:
        raise InvalidArgument(
            f"{what} '{tensor.name}' is {array.dtype} {list(array.shape)} but the model declares "
            f"{dtype} {list(dims)}"
        )
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))


def _is_external(tensor: TensorProto) -> bool:
    return tensor.data_location == TensorProto.EXTERNAL and not is_inline(tensor)


def _from_file_in_memory(tensor: TensorProto, buffer: memoryview) -> np.ndarray:
    info = {e.key: e.value for e in tensor.external_data}
    dtype, dims = _declared(tensor)
    offset = int(info.get("offset") or 0)
    nbytes = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    length = int(info["length"]) if info.get("length") else nbytes
    if dtype.kind == "O" or length < nbytes or offset + nbytes > len(buffer):
        raise InvalidArgument(
            f"In-memory file '{info.get('location')}' has {len(buffer)} bytes; initializer "
            f"'{tensor.name}' needs {nbytes} at offset {offset}"
        )
    raw = np.frombuffer(buffer, dtype=np.uint8, count=nbytes, offset=offset)
    return raw.view(dtype).reshape(dims).copy()


def _apply_initializers(model: ModelProto, o: ModelOverrides) -> None:
    by_name = {t.name: t for t in model.graph.initializer}
    for name, array in o.initializers.items():
        if name not in by_name:
            log.warning("add_initializer('%s'): the model has no initializer of that name", name)
            continue
        _replace(by_name[name], array, "Initializer")
    for name, array in o.external_initializers.items():
        tensor = by_name.get(name)
        if tensor is None:
            log.warning("add_external_initializers: the model has no initializer '%s'", name)
            continue
        if not _is_external(tensor):
            raise InvalidArgument(
                f"add_external_initializers: initializer '{name}' keeps its data in the model, "
                "not in an external file; use add_initializer to replace it"
            )
        _replace(tensor, array, "External initializer")
    if o.external_files:
        for tensor in model.graph.initializer:
            if not _is_external(tensor):
                continue
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            buffer = o.external_files.get(location)
            if buffer is None:
                buffer = o.external_files.get(os.path.normpath(location))
            if buffer is not None:
                _replace(tensor, _from_file_in_memory(tensor, buffer), "External initializer")


def _copy(model: ModelProto) -> ModelProto:
    out = ModelProto()
    out.CopyFrom(model)
    return out


def _tensor_dims(vi: onnx.ValueInfoProto) -> Any:
    if vi.type.WhichOneof("value") != "tensor_type":
        return ()
    return vi.type.tensor_type.shape.dim


def _apply_free_dimensions(model: ModelProto, o: ModelOverrides) -> None:
    if not (o.dims_by_name or o.dims_by_denotation):
        return
    names = dict(o.dims_by_name)
    for vi in model.graph.input:
        for dim in _tensor_dims(vi):
            value = o.dims_by_denotation.get(dim.denotation) if dim.denotation else None
            if value is None or dim.HasField("dim_value"):
                continue
            if dim.HasField("dim_param"):
                names.setdefault(dim.dim_param, value)
            else:
                dim.dim_value = value
    # A dimension name means one size wherever it appears: inputs, outputs, value infos.
    for vi in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for dim in _tensor_dims(vi):
            if dim.HasField("dim_param") and dim.dim_param in names:
                dim.dim_value = names[dim.dim_param]


def apply_session_setup(loaded: LoadedModel, options: Any, owned: bool = True) -> None:
    """Apply ort_config, the option overrides and the shared allocator to a loaded model.

    ``owned=False`` (the caller's own ModelProto) copies the proto before changing it.
    """
    model = loaded.proto
    log.debug(
        "Loading model: ir_version %d, opsets %s, %d nodes, %d initializers",
        model.ir_version,
        loaded.opsets,
        len(model.graph.node),
        len(model.graph.initializer),
    )
    if os.environ.get("ORT_LOAD_CONFIG_FROM_MODEL") == "1":
        _apply_ort_config(model, options)
    overrides = options.__dict__.get("_model_overrides")
    if overrides is not None and not overrides.empty():
        if not owned:
            loaded.proto = model = _copy(model)
        _apply_initializers(model, overrides)
        _apply_free_dimensions(model, overrides)
    config = getattr(options, "_config", {})
    if config.get("session.use_env_allocators") == "1":
        from onnxpy.runtime.devices import registered_allocators

        if registered_allocators():
            keep_freed_memory()
    log.info("Initializing session (graph optimization level %s)", options.graph_optimization_level)


# -- optimized model --------------------------------------------------------------------------
def save_optimized_model(model: ModelProto, options: Any, base_dir: str | None) -> None:
    """Write ``options.optimized_model_filepath`` with its weights (see model/save.py):
    initializers of at least ``..._min_size_in_bytes`` (default 1024) go to the external file
    the config entry names, or next to the file when the source kept its weights outside."""
    path = options.optimized_model_filepath
    config = getattr(options, "_config", {})
    location = config.get(EXTERNAL_FILE_KEY)
    folder = os.path.dirname(os.path.abspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    try:
        threshold = int(config.get(EXTERNAL_MIN_SIZE_KEY, _DEFAULT_MIN_SIZE))
    except ValueError:
        raise InvalidArgument(
            f"{EXTERNAL_MIN_SIZE_KEY} must be an integer, got {config[EXTERNAL_MIN_SIZE_KEY]!r}"
        ) from None
    save_model_to(model, path, base_dir, external_file=location, min_external_bytes=threshold)
    log.info("Optimized model written to %s (external data: %s)", path, location or "none")
