"""TypeHelper: ONNX type strings to NumPy and PyTorch element types, for IO binding.

Clients that bind torch tensors to a session (Hugging Face optimum) ask it which NumPy type to
bind as and which torch dtype to allocate for each input and output, from the session's
``NodeArg.type`` strings ('tensor(float)', 'tensor(int64)', ...). PyTorch is imported only by
the torch methods.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

__all__ = ["TypeHelper"]

# 'tensor(<name>)' -> NumPy scalar type
_NUMPY = {
    "float": np.float32,
    "float16": np.float16,
    "double": np.float64,
    "bfloat16": ml_dtypes.bfloat16,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "bool": np.bool_,
    "string": np.str_,
}
# 'tensor(<name>)' -> attribute of the torch module
_TORCH = {
    "float": "float32",
    "float16": "float16",
    "double": "float64",
    "bfloat16": "bfloat16",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "bool": "bool",
}


def _element_name(ort_type: str) -> str:
    if not (isinstance(ort_type, str) and ort_type.startswith("tensor(") and ort_type[-1] == ")"):
        raise ValueError(f"Expected a tensor type string such as 'tensor(float)', got {ort_type!r}")
    return ort_type[len("tensor(") : -1]


def _type_of(args: list[Any], name: str, what: str) -> str:
    for arg in args:
        if arg.name == name:
            return arg.type
    raise ValueError(f"'{name}' is not an {what} of the session")


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise ImportError("TypeHelper's torch conversions need PyTorch installed") from e
    return torch


class TypeHelper:
    """Static conversions between a session's type strings and NumPy / PyTorch types."""

    @staticmethod
    def get_input_type(ort_session: Any, name: str) -> str:
        return _type_of(ort_session.get_inputs(), name, "input")

    @staticmethod
    def get_output_type(ort_session: Any, name: str) -> str:
        return _type_of(ort_session.get_outputs(), name, "output")

    @staticmethod
    def ort_type_to_numpy_type(ort_type: str) -> type:
        name = _element_name(ort_type)
        if name not in _NUMPY:
            raise ValueError(f"{ort_type} has no NumPy element type here")
        return _NUMPY[name]

    @staticmethod
    def ort_type_to_torch_type(ort_type: str) -> Any:
        name = _element_name(ort_type)
        if name not in _TORCH:
            raise ValueError(f"{ort_type} has no PyTorch element type")
        return getattr(_torch(), _TORCH[name])

    @staticmethod
    def numpy_type_to_torch_type(numpy_type: Any) -> Any:
        dtype = np.dtype(numpy_type)
        for name, np_type in _NUMPY.items():
            if np.dtype(np_type) == dtype and name in _TORCH:
                return getattr(_torch(), _TORCH[name])
        raise ValueError(f"NumPy type {dtype} has no PyTorch element type here")

    @staticmethod
    def torch_type_to_numpy_type(torch_type: Any) -> type:
        torch = _torch()
        for name, attr in _TORCH.items():
            if getattr(torch, attr) == torch_type:
                return _NUMPY[name]
        raise ValueError(f"PyTorch type {torch_type} has no NumPy element type here")

    @staticmethod
    def get_io_numpy_type_map(ort_session: Any) -> dict[str, type]:
        """NumPy type of every input and output of ``ort_session``, by name."""
        args = [*ort_session.get_inputs(), *ort_session.get_outputs()]
        return {arg.name: TypeHelper.ort_type_to_numpy_type(arg.type) for arg in args}
