"""Write a session's model to a new place (``SessionOptions.optimized_model_filepath``).

A loaded model may keep its big weights beside the proto (inline weights) or in external data
files next to the source model. A file written elsewhere must carry its weights with it: inline
weights go back into the proto, and tensors stored externally are read and written again as
external data next to the new file (one data file, named after it unless configured), so the
copy loads on its own, from any folder, in onnxpy and in onnxruntime.
"""

from __future__ import annotations

import os

import onnx
from onnx import ModelProto, TensorProto, numpy_helper

from onnxpy.model.tensors import tensor_to_array
from onnxpy.model.weights import materialize

__all__ = ["save_model_to"]

_PROTO_LIMIT = 2**31 - 1  # protobuf cannot serialize a message of 2 GB or more


def _externals(model: ModelProto) -> list[TensorProto]:
    return [t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL]


def save_model_to(
    model: ModelProto,
    path: str,
    base_dir: str | None,
    *,
    external_file: str | None = None,
    min_external_bytes: int = 1024,
) -> None:
    """Save ``model`` (weights included) at ``path``.

    ``base_dir`` is the source model's folder, where its external data lives. Weights go into
    ``external_file`` (a name relative to ``path``'s folder) when it is given, when the source
    kept weights externally, or when the model would not fit in one protobuf message.
    """
    out = materialize(model)
    stored_outside = _externals(out)
    for t in stored_outside:
        array = tensor_to_array(t, base_dir)
        t.CopyFrom(numpy_helper.from_array(array, t.name))
    if not external_file and not stored_outside and out.ByteSize() < _PROTO_LIMIT:
        onnx.save_model(out, path)
        return
    location = external_file or os.path.basename(path) + ".data"
    data_path = os.path.join(os.path.dirname(os.path.abspath(path)), location)
    if os.path.exists(data_path):
        os.remove(data_path)  # onnx appends to an existing data file
    onnx.save_model(
        out,
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=location,
        size_threshold=min_external_bytes,
    )
