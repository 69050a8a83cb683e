"""Feature encoders and small transforms of the ai.onnx.ml domain.

LabelEncoder, OneHotEncoder, CategoryMapper, DictVectorizer, CastMap, ZipMap, FeatureVectorizer,
ArrayFeatureExtractor, Binarizer, Imputer, Normalizer, Scaler.

Look-ups (label and category maps) sort the keys once and use ``np.searchsorted``: strings are
compared as fixed-width NumPy unicode arrays, so no Python loop runs per element.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from onnx import TensorProto, TypeProto

from onnxpy.kernels.ai_onnx_ml._common import as_rows, class_labels
from onnxpy.kernels.registry import NodeInfo, register

ML = "ai.onnx.ml"


def _is_text(x: np.ndarray) -> bool:
    return x.dtype.kind in "OUS"


def _text_array(values: Any) -> np.ndarray:
    """Strings as a NumPy unicode array, for sorting and searching in C."""
    arr = np.asarray(values)
    if arr.dtype.kind == "U":
        return arr
    if arr.size == 0:
        return np.zeros(arr.shape, dtype="U1")
    return arr.astype(str)


class _Lookup:
    """key -> value table over sorted unique keys; the last duplicate key wins."""

    def __init__(self, keys: np.ndarray, values: np.ndarray, default: Any) -> None:
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys but {len(values)} values")
        self.text = _is_text(keys)
        keys = _text_array(keys) if self.text else np.asarray(keys)
        values = np.asarray(values)
        # Last occurrence wins: unique over the reversed arrays keeps the first of each.
        uniq, first = np.unique(keys[::-1], return_index=True)
        vals = values[::-1][first]
        self.nan_value = None
        if not self.text and uniq.dtype.kind == "f":
            nan = np.isnan(uniq)
            if nan.any():
                self.nan_value = vals[nan][0]
                uniq, vals = uniq[~nan], vals[~nan]
        self.keys = uniq
        self.values = vals
        self.default = default

    def __call__(self, x: np.ndarray, out_dtype: np.dtype) -> np.ndarray:
        if self.text != _is_text(x):
            kind = "strings" if self.text else "numbers"
            raise TypeError(f"the keys are {kind} but the input is {x.dtype}")
        probe = _text_array(x) if self.text else x
        out = np.full(x.shape, self.default, dtype=out_dtype)
        if len(self.keys):
            pos = np.minimum(np.searchsorted(self.keys, probe), len(self.keys) - 1)
            hit = self.keys[pos] == probe
            out[hit] = self.values[pos[hit]]
        if self.nan_value is not None and x.dtype.kind == "f":
            out[np.isnan(x)] = self.nan_value
        return out


def _strings(values: Sequence[Any] | None) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else v for v in (values or [])]


def _object_array(values: Sequence[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


# -- LabelEncoder -----------------------------------------------------------------------------
@register("LabelEncoder", since=1, domain=ML, factory=True)
def label_encoder_v1(
    info: NodeInfo, *, classes_strings=None, default_int64=-1, default_string="_Unused"
) -> Callable[[np.ndarray], np.ndarray]:
    """Strings -> their index in classes_strings; integers -> the string at that index.

    A string listed twice maps to its last index (as onnxruntime; LabelEncoder 4 says so).
    """
    classes = _strings(classes_strings)
    to_index = _Lookup(_object_array(classes), np.arange(len(classes)), int(default_int64))
    table = _object_array(classes)

    def run(x: np.ndarray) -> np.ndarray:
        if _is_text(x):
            return to_index(x, np.dtype(np.int64))
        idx = np.asarray(x, dtype=np.int64)
        ok = (idx >= 0) & (idx < len(table))
        out = np.empty(idx.shape, dtype=object)
        out[...] = default_string
        out[ok] = table[idx[ok]]
        return out

    return run


def _typed_values(
    strings: Sequence[Any] | None,
    ints: Sequence[int] | None,
    floats: Sequence[float] | None,
    tensor: np.ndarray | None,
    what: str,
) -> np.ndarray:
    given = [v is not None for v in (strings, ints, floats, tensor)]
    if sum(given) != 1:
        raise ValueError(f"exactly one of the {what}_* attributes must be set")
    if tensor is not None:
        tensor = np.asarray(tensor).ravel()
        return _object_array(_strings(list(tensor))) if _is_text(tensor) else tensor
    if strings is not None:
        return _object_array(_strings(strings))
    if ints is not None:
        return np.asarray(ints, dtype=np.int64)
    return np.asarray(floats, dtype=np.float32)


def _label_default(
    values: np.ndarray,
    default_tensor: np.ndarray | None,
    default_int64: int,
    default_float: float,
    default_string: str,
) -> Any:
    if default_tensor is not None:
        flat = np.asarray(default_tensor).ravel()
        if flat.size != 1:
            raise ValueError("default_tensor must hold exactly one value")
        value = flat[0]
        return value.decode() if isinstance(value, bytes) else value
    if values.dtype == object:
        return default_string
    if values.dtype.kind in "iu":
        return default_int64
    return default_float


@register("LabelEncoder", since=(2, 4), domain=ML, factory=True)
def label_encoder(
    info: NodeInfo,
    *,
    default_float=-0.0,
    default_int64=-1,
    default_string="_Unused",
    default_tensor=None,
    keys_floats=None,
    keys_int64s=None,
    keys_strings=None,
    keys_tensor=None,
    values_floats=None,
    values_int64s=None,
    values_strings=None,
    values_tensor=None,
) -> Callable[[np.ndarray], np.ndarray]:
    """Maps each element through keys_* -> values_*; unknown keys get the default."""
    keys = _typed_values(keys_strings, keys_int64s, keys_floats, keys_tensor, "keys")
    values = _typed_values(values_strings, values_int64s, values_floats, values_tensor, "values")
    default = _label_default(values, default_tensor, default_int64, default_float, default_string)
    lookup = _Lookup(keys, values, default)
    out_dtype = values.dtype

    def run(x: np.ndarray) -> np.ndarray:
        return lookup(np.asarray(x), out_dtype)

    return run


# -- categories -------------------------------------------------------------------------------
@register("CategoryMapper", since=1, domain=ML, factory=True)
def category_mapper(
    info: NodeInfo,
    *,
    cats_int64s=None,
    cats_strings=None,
    default_int64=-1,
    default_string="_Unused",
) -> Callable[[np.ndarray], np.ndarray]:
    """Strings -> int64 and int64 -> strings through the parallel cats_* lists."""
    strings = _object_array(_strings(cats_strings))
    ints = np.asarray(cats_int64s or [], dtype=np.int64)
    if len(strings) != len(ints):
        raise ValueError("cats_strings and cats_int64s must have the same length")
    to_int = _Lookup(strings, ints, int(default_int64))
    to_str = _Lookup(ints, strings, default_string)

    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if _is_text(x):
            return to_int(x, np.dtype(np.int64))
        return to_str(x.astype(np.int64), np.dtype(object))

    return run


@register("OneHotEncoder", since=1, domain=ML, factory=True)
def one_hot_encoder(
    info: NodeInfo, *, cats_int64s=None, cats_strings=None, zeros=1
) -> Callable[[np.ndarray], np.ndarray]:
    """Appends a category axis: Y[..., k] = 1.0 where X equals the k-th category."""
    if (cats_int64s is None) == (cats_strings is None):
        raise ValueError("exactly one of cats_int64s and cats_strings must be set")
    if cats_strings is not None:
        cats = _object_array(_strings(cats_strings))
    else:
        cats = np.asarray(cats_int64s, dtype=np.int64)
    lookup = _Lookup(cats, np.arange(len(cats)), -1)

    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if not _is_text(x):
            x = x.astype(np.int64)
        idx = lookup(x, np.dtype(np.int64))
        if not zeros and (idx < 0).any():
            raise ValueError("OneHotEncoder met an unknown category and zeros = 0")
        out = np.zeros(x.shape + (len(cats),), dtype=np.float32)
        flat = out.reshape(-1, len(cats))
        ok = idx.ravel() >= 0
        flat[np.flatnonzero(ok), idx.ravel()[ok]] = 1.0
        return out

    return run


# -- maps -------------------------------------------------------------------------------------
_ELEM_DTYPES = {
    TensorProto.FLOAT: np.float32,
    TensorProto.DOUBLE: np.float64,
    TensorProto.INT64: np.int64,
    TensorProto.STRING: object,
}


def _tensor_dtype(tp: TypeProto | None) -> Any:
    """Element dtype of a tensor type (or of a map's value type); None when unknown."""
    if tp is None:
        return None
    which = tp.WhichOneof("value")
    if which == "map_type":
        return _tensor_dtype(tp.map_type.value_type)
    if which == "tensor_type":
        return _ELEM_DTYPES.get(tp.tensor_type.elem_type)
    return None


def _guess_dtype(values: Sequence[Any]) -> Any:
    if any(isinstance(v, (str, bytes)) for v in values):
        return object
    if values and all(isinstance(v, (int, np.integer)) for v in values):
        return np.int64
    return np.float32


@register("DictVectorizer", since=1, domain=ML, factory=True)
def dict_vectorizer(
    info: NodeInfo, *, int64_vocabulary=None, string_vocabulary=None
) -> Callable[[dict], np.ndarray]:
    """A map -> a [1, len(vocabulary)] tensor; absent keys are zero (empty for strings)."""
    if (int64_vocabulary is None) == (string_vocabulary is None):
        raise ValueError("exactly one of int64_vocabulary and string_vocabulary must be set")
    vocab: list[Any] = (
        _strings(string_vocabulary) if string_vocabulary is not None else list(int64_vocabulary)
    )
    position = {k: i for i, k in enumerate(vocab)}
    dtype = _tensor_dtype(info.output_types[0] if info.output_types else None)
    dtype = dtype or _tensor_dtype(info.input_types[0] if info.input_types else None)

    def run(x: dict) -> np.ndarray:
        if not isinstance(x, dict):
            raise TypeError(f"DictVectorizer takes a map, got {type(x).__name__}")
        out_dtype = dtype or _guess_dtype(list(x.values()))
        out = np.zeros((1, len(vocab)), dtype=out_dtype)
        if out_dtype is object:
            out[...] = ""
        for key, value in x.items():
            i = position.get(key.decode() if isinstance(key, bytes) else key)
            if i is not None:
                out[0, i] = value
        return out

    return run


_CAST_TO = {"TO_FLOAT": np.float32, "TO_INT64": np.int64, "TO_STRING": object}


def _cast_value(value: Any, dtype: Any) -> Any:
    if dtype is object:
        return value if isinstance(value, str) else f"{float(value):f}"
    if isinstance(value, (str, bytes)):
        number = float(value)
        return int(number) if dtype is np.int64 else number
    return int(value) if dtype is np.int64 else value


@register("CastMap", since=1, domain=ML, factory=True)
def cast_map(
    info: NodeInfo, *, cast_to="TO_FLOAT", map_form="DENSE", max_map=1
) -> Callable[[dict], np.ndarray]:
    """A map with int64 keys -> [1, n] tensor ordered by key (SPARSE: key is the position)."""
    if cast_to not in _CAST_TO:
        raise ValueError(f"cast_to must be one of {list(_CAST_TO)}, got '{cast_to}'")
    if map_form not in ("DENSE", "SPARSE"):
        raise ValueError(f"map_form must be DENSE or SPARSE, got '{map_form}'")
    dtype = _CAST_TO[cast_to]

    def run(x: dict) -> np.ndarray:
        if not isinstance(x, dict):
            raise TypeError(f"CastMap takes a map, got {type(x).__name__}")
        keys = sorted(int(k) for k in x)
        values = [_cast_value(x[k], dtype) for k in keys]
        if map_form == "DENSE":
            out = np.empty((1, len(values)), dtype=dtype)
            out[0, :] = values
            return out
        if keys and (keys[0] < 0 or keys[-1] >= max_map):
            raise ValueError(f"CastMap SPARSE: key outside [0, max_map={max_map})")
        out = np.zeros((1, int(max_map)), dtype=dtype)
        if dtype is object:
            out[...] = "0.f"  # onnxruntime's pad value for string output
        if keys:
            out[0, keys] = values
        return out

    return run


@register("ZipMap", since=1, domain=ML, factory=True)
def zip_map(
    info: NodeInfo, *, classlabels_int64s=None, classlabels_strings=None
) -> Callable[[np.ndarray], list[dict]]:
    """[N, C] scores -> a list of N dicts {label: score}, as onnxruntime returns them."""
    labels = class_labels(classlabels_strings, classlabels_int64s).tolist()

    def run(x: np.ndarray) -> list[dict]:
        rows = as_rows(np.asarray(x, dtype=np.float32))
        if rows.shape[1] != len(labels):
            raise ValueError(
                f"ZipMap has {len(labels)} labels but the input has {rows.shape[1]} columns"
            )
        return [dict(zip(labels, row, strict=True)) for row in rows.tolist()]

    return run


# -- tensors ----------------------------------------------------------------------------------
@register("FeatureVectorizer", since=1, domain=ML)
def feature_vectorizer(*xs: np.ndarray, inputdimensions=None) -> np.ndarray:
    """Concatenates the inputs' columns; each is cut or zero-padded to its inputdimensions."""
    if not xs:
        raise ValueError("FeatureVectorizer needs at least one input")
    dims = (
        list(inputdimensions) if inputdimensions else [as_rows(np.asarray(x)).shape[1] for x in xs]
    )
    if len(dims) != len(xs):
        raise ValueError(f"inputdimensions has {len(dims)} sizes for {len(xs)} inputs")
    rows = [as_rows(np.asarray(x)) for x in xs]
    n = rows[0].shape[0]
    if any(r.shape[0] != n for r in rows):
        raise ValueError("FeatureVectorizer inputs must have the same number of rows")
    out = np.zeros((n, int(sum(dims))), dtype=np.float32)
    col = 0
    for r, d in zip(rows, dims, strict=True):
        k = min(int(d), r.shape[1])
        out[:, col : col + k] = r[:, :k]
        col += int(d)
    return out


@register("ArrayFeatureExtractor", since=1, domain=ML)
def array_feature_extractor(x: np.ndarray, y: np.ndarray, /) -> np.ndarray:
    """Selects the given indices along the last axis (a 1-D input gives a [1, k] result)."""
    x = np.asarray(x)
    idx = np.asarray(y, dtype=np.int64).ravel()
    size = x.shape[-1] if x.ndim else 1
    if len(idx) and (idx.min() < 0 or idx.max() >= size):
        raise ValueError(f"ArrayFeatureExtractor: index out of range [0, {size})")
    if x.ndim <= 1:
        return x.reshape(1, -1)[:, idx]
    return x[..., idx]


@register("Binarizer", since=1, domain=ML)
def binarizer(x: np.ndarray, /, *, threshold=0.0) -> np.ndarray:
    """1 where X > threshold, else 0, in X's type."""
    return (x > threshold).astype(x.dtype)


@register("Imputer", since=1, domain=ML)
def imputer(
    x: np.ndarray,
    /,
    *,
    imputed_value_floats=None,
    imputed_value_int64s=None,
    replaced_value_float=0.0,
    replaced_value_int64=0,
) -> np.ndarray:
    """Replaces the elements equal to the replaced value by the (per-feature) imputed value."""
    if x.dtype.kind == "f":
        fill = imputed_value_floats
        mask = np.isnan(x) if np.isnan(replaced_value_float) else x == replaced_value_float
    else:
        fill = imputed_value_int64s
        mask = x == replaced_value_int64
    if not fill:
        kind = "floats" if x.dtype.kind == "f" else "int64s"
        raise ValueError(f"Imputer on {x.dtype} input needs imputed_value_{kind}")
    fill = np.asarray(fill).astype(x.dtype)
    if len(fill) not in (1, x.shape[-1] if x.ndim else 1):
        raise ValueError(f"{len(fill)} imputed values for {x.shape[-1]} features")
    return np.where(mask, fill, x).astype(x.dtype, copy=False)


@register("Normalizer", since=1, domain=ML)
def normalizer(x: np.ndarray, /, *, norm="MAX") -> np.ndarray:
    """Each row divided by its max, L1 norm or L2 norm; a zero divisor leaves the row as is."""
    rows = np.asarray(x, dtype=np.float64)
    if norm == "MAX":
        div = np.max(rows, axis=-1, keepdims=True) if rows.size else rows
    elif norm == "L1":
        div = np.sum(np.abs(rows), axis=-1, keepdims=True)
    elif norm == "L2":
        div = np.sqrt(np.sum(rows * rows, axis=-1, keepdims=True))
    else:
        raise ValueError(f"norm must be MAX, L1 or L2, got '{norm}'")
    safe = np.where(div == 0, 1.0, div)
    return (rows / safe).astype(np.float32)


@register("Scaler", since=1, domain=ML)
def scaler(x: np.ndarray, /, *, offset=None, scale=None) -> np.ndarray:
    """(X - offset) * scale with per-feature (or single) offset and scale; float32 out."""
    rows = np.asarray(x, dtype=np.float64)
    off = np.asarray(offset if offset else [0.0], dtype=np.float32).astype(np.float64)
    mul = np.asarray(scale if scale else [1.0], dtype=np.float32).astype(np.float64)
    features = rows.shape[-1] if rows.ndim else 1
    for name, v in (("offset", off), ("scale", mul)):
        if len(v) not in (1, features):
            raise ValueError(f"Scaler {name} has {len(v)} values for {features} features")
    return ((rows - off) * mul).astype(np.float32)
