"""Feeds for a config.pbtxt ``model_warmup`` entry, run before a model version reports ready.

Each entry names inputs with a datatype, dims (without the batch dimension when the model
batches; ``batch_size`` rows are prepended) and one of ``zero_data``, ``random_data`` or
``input_data_file``: raw row-major bytes read from the model folder's ``warmup/`` subfolder, as
in Triton. Nothing outside that folder is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxpy.serving import tensors
from onnxpy.serving.errors import ModelLoadError
from onnxpy.serving.grpc import inference_pb2 as pb

if TYPE_CHECKING:
    from onnxpy.serving.model import ModelVersion

__all__ = ["warmup_feeds"]


def _random(dtype: np.dtype, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if dtype.kind == "f" or dtype == tensors.V2_DTYPES["BF16"]:
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 10, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    out = np.empty(shape, dtype=object)
    out[...] = "warmup"
    return out


def warmup_feeds(entry: pb.ModelWarmup, model: ModelVersion, folder: Path) -> dict[str, Any]:
    """The feeds of one warmup entry for ``model`` (a ModelVersion), checked like a request."""
    where = f"model '{model.name}' warmup '{entry.name}'"
    specs = {s.name: s for s in model.inputs}
    rng = np.random.default_rng(0)
    feeds: dict[str, Any] = {}
    for name, spec_in in entry.inputs.items():
        spec = specs.get(name)
        if spec is None:
            raise ModelLoadError(f"{where}: no input named '{name}'; inputs are {list(specs)}")
        datatype = tensors.CONFIG_TO_V2.get(pb.DataType.Name(spec_in.data_type))
        if datatype != spec.datatype:
            raise ModelLoadError(f"{where}: input '{name}' must be {spec.datatype}")
        shape = tuple(int(d) for d in spec_in.dims)
        if model.max_batch_size > 0:
            shape = (max(entry.batch_size, 1), *shape)
        dtype = tensors.V2_DTYPES[datatype]
        which = spec_in.WhichOneof("input_data_type")
        if which == "input_data_file":
            root = (folder / "warmup").resolve()
            path = (root / spec_in.input_data_file).resolve()
            if root not in path.parents:
                raise ModelLoadError(f"{where}: input_data_file must lie in {root}")
            try:
                raw = path.read_bytes()
            except OSError as e:
                raise ModelLoadError(f"{where}: {e}") from e
            try:
                feeds[name] = tensors.decode_raw(name, datatype, shape, raw)
            except Exception as e:
                raise ModelLoadError(f"{where}: {e}") from e
        elif which == "random_data":
            feeds[name] = _random(dtype, shape, rng)
        else:
            feeds[name] = (
                np.zeros(shape, dtype=dtype) if datatype != "BYTES" else _random(dtype, shape, rng)
            )
    missing = sorted(set(specs) - set(feeds))
    if missing:
        raise ModelLoadError(f"{where}: gives no data for input(s) {missing}")
    return {n: model.coerce(n, a) for n, a in feeds.items()}
