"""Model inputs from files or generators, and arrays saved for later (golden files).

Every tool takes inputs the same way, so ``run``, ``validate``, ``compare`` and ``bench`` agree
on what a spec means:

* ``NAME=FILE.npy``: one input from a NumPy file;
* ``FILE.npz`` or ``FILE.json``: several inputs by name (JSON values are nested lists, cast to
  the dtype the model declares);
* ``NAME=random`` or ``NAME=random:1,3,224,224``: seeded random values of the declared dtype,
  symbolic dimensions set to ``batch`` unless a shape is given;
* a bare ``FILE.npy`` when the model has exactly one input.

Inputs not named by any spec are generated at random (``batch`` for symbolic dimensions).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from onnxpy.errors import InvalidArgument

__all__ = [
    "InputInfo",
    "model_inputs",
    "make_feeds",
    "random_array",
    "load_arrays",
    "save_arrays",
    "load_model_proto",
]


@dataclass(frozen=True)
class InputInfo:
    """A graph input a caller must feed: name, NumPy dtype (None: not a tensor), dims."""

    name: str
    dtype: np.dtype | None
    shape: tuple[int | str | None, ...]
    type: str


def load_model_proto(model: str | os.PathLike | onnx.ModelProto, *, weights: bool = True):
    """A ModelProto from a path (external data loaded only if ``weights``) or the proto itself."""
    if isinstance(model, onnx.ModelProto):
        return model
    path = os.fspath(model)
    if not os.path.isfile(path):
        from onnxpy.errors import NoSuchFile

        raise NoSuchFile(f"{path}: no such model file")
    try:
        return onnx.load(path, load_external_data=weights)
    except Exception as e:  # noqa: BLE001 - protobuf raises several unrelated classes
        from onnxpy.errors import InvalidProtobuf

        raise InvalidProtobuf(f"{path}: not a readable ONNX model ({e})") from e


def model_inputs(model: onnx.ModelProto) -> list[InputInfo]:
    """The inputs a caller feeds (graph inputs that are not initializers)."""
    from onnxpy.types import ELEM_TYPE_TO_DTYPE, shape_of, type_string

    inits = {t.name for t in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tp = vi.type
        dtype = None
        if tp.WhichOneof("value") == "tensor_type":
            dtype = ELEM_TYPE_TO_DTYPE.get(tp.tensor_type.elem_type)
        shape = tuple(shape_of(tp)) if tp.WhichOneof("value") else ()
        out.append(InputInfo(vi.name, dtype, shape, type_string(tp)))
    return out


def random_array(info: InputInfo, shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Seeded values of the input's dtype: normal floats, small non-negative integers
    (valid as indices and token ids), booleans, or short strings."""
    dtype = info.dtype
    if dtype is None:
        raise InvalidArgument(f"input '{info.name}' is {info.type}: give it in a .json or .npz")
    if dtype.kind == "f" or dtype.name in ("bfloat16",):
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0, 10, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.kind == "O":
        return np.array(
            [f"s{v}" for v in rng.integers(0, 10, int(np.prod(shape)))], dtype=object
        ).reshape(shape)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    raise InvalidArgument(f"cannot generate {info.type} for input '{info.name}': give a file")


def _concrete_shape(info: InputInfo, batch: int) -> list[int]:
    return [d if isinstance(d, int) and d >= 0 else batch for d in info.shape]


def _parse_shape(text: str) -> list[int]:
    try:
        return [int(d) for d in text.replace("x", ",").split(",") if d.strip()]
    except ValueError:
        raise InvalidArgument(f"bad shape {text!r}: expected integers like 1,3,224,224") from None


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Named arrays from ``.npz`` (no pickles) or ``.json`` ({name: nested list})."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InvalidArgument(f"{path}: no such file")
    if path.endswith(".json"):
        with open(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise InvalidArgument(f"{path}: not valid JSON ({e})") from e
        if not isinstance(data, dict):
            raise InvalidArgument(f"{path}: expected a JSON object {{name: values}}")
        return {k: np.asarray(v) for k, v in data.items()}
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if path.endswith(".npy"):
        raise InvalidArgument(f"{path}: a .npy file holds one array: write NAME={path}")
    raise InvalidArgument(f"{path}: expected a .npz or .json file of named arrays")


def _cast(info: InputInfo | None, value: np.ndarray, source: str) -> np.ndarray:
    if info is None or info.dtype is None or value.dtype == info.dtype:
        return value
    if value.dtype.kind in "fiub" and info.dtype.kind in "fiub":
        return value.astype(info.dtype)
    raise InvalidArgument(
        f"input '{info.name}' is {info.type} but {source} holds {value.dtype} values"
    )


def make_feeds(
    inputs: Sequence[InputInfo],
    specs: Sequence[str] = (),
    *,
    batch: int = 1,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Feeds for ``inputs`` from ``specs`` (see the module docstring); the rest at random."""
    by_name = {i.name: i for i in inputs}
    rng = np.random.default_rng(seed)
    given: dict[str, np.ndarray] = {}
    shapes: dict[str, list[int]] = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        if not sep:
            path = spec
            if path.endswith(".npy"):
                if len(inputs) != 1:
                    raise InvalidArgument(
                        f"{path}: the model has {len(inputs)} inputs; write NAME={path}"
                    )
                given[inputs[0].name] = _cast(inputs[0], np.load(path, allow_pickle=False), path)
                continue
            for key, value in load_arrays(path).items():
                if key not in by_name:
                    raise InvalidArgument(
                        f"{path}: '{key}' is not an input of the model; inputs are {list(by_name)}"
                    )
                given[key] = _cast(by_name[key], value, path)
            continue
        if name not in by_name:
            raise InvalidArgument(
                f"'{name}' is not an input of the model; inputs are {list(by_name)}"
            )
        if rest == "random" or rest.startswith("random:"):
            if rest.startswith("random:"):
                shapes[name] = _parse_shape(rest[7:])
            continue
        if not os.path.isfile(rest):
            raise InvalidArgument(f"input '{name}': {rest}: no such file")
        if rest.endswith(".npy"):
            value = np.load(rest, allow_pickle=False)
        else:
            arrays = load_arrays(rest)
            if name not in arrays:
                raise InvalidArgument(f"{rest} has no array named '{name}'")
            value = arrays[name]
        given[name] = _cast(by_name[name], value, rest)
    feeds = {}
    for info in inputs:
        if info.name in given:
            feeds[info.name] = given[info.name]
        else:
            shape = shapes.get(info.name) or _concrete_shape(info, batch)
            feeds[info.name] = random_array(info, shape, rng)
    return feeds


def save_arrays(path: str | os.PathLike, arrays: Mapping[str, object]) -> list[str]:
    """Save the tensors of ``arrays`` to ``.npz`` by name; returns the names skipped (values
    that are not tensors, such as ZipMap's list of dicts)."""
    tensors, skipped = {}, []
    for name, value in arrays.items():
        if isinstance(value, np.ndarray) and value.dtype != object:
            tensors[name] = value
        elif isinstance(value, np.ndarray):
            tensors[name] = value.astype(str)
        else:
            skipped.append(name)
    np.savez(os.fspath(path), **tensors)
    return skipped
