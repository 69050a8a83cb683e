"""One exception hierarchy, named like onnxruntime's so that ``except`` clauses carry over.

onnxruntime raises classes from ``onnxruntime.capi.onnxruntime_pybind11_state``; the same names
live here (and are re-exported from ``onnxpy.capi.onnxruntime_pybind11_state``). Every class
subclasses :class:`OnnxpyError`. :class:`InvalidArgument` also subclasses ``ValueError`` because
callers of a runtime commonly catch that for bad feeds.
"""

from __future__ import annotations

__all__ = [
    "OnnxpyError",
    "Fail",
    "InvalidArgument",
    "NoSuchFile",
    "NoModel",
    "EngineError",
    "RuntimeException",
    "InvalidProtobuf",
    "ModelLoaded",
    "NotImplemented",
    "InvalidGraph",
    "EPFail",
    "Terminated",
]


class OnnxpyError(Exception):
    """Base class of every error onnxpy raises on purpose."""


class Fail(OnnxpyError):
    """A generic failure, e.g. a kernel that raised while running a node."""


class InvalidArgument(OnnxpyError, ValueError):
    """A caller passed something unusable: unknown input name, wrong dtype or shape."""


class NoSuchFile(OnnxpyError, FileNotFoundError):
    """The model file (or one of its external data files) does not exist."""


class NoModel(OnnxpyError):
    """No model was given."""


class EngineError(OnnxpyError):
    """An internal engine failure."""


class RuntimeException(OnnxpyError, RuntimeError):
    """A failure at run time that is not attributable to one node."""


class InvalidProtobuf(OnnxpyError):
    """The bytes are not a parseable ONNX ModelProto (garbage or truncated)."""


class ModelLoaded(OnnxpyError):
    """The model is already loaded."""


class NotImplemented(OnnxpyError, NotImplementedError):  # noqa: A001 - onnxruntime's name
    """The model uses an operator, type or attribute that onnxpy has no kernel for."""


class InvalidGraph(OnnxpyError):
    """The model is not a valid ONNX graph (checker failure, cycle, undefined value)."""


class EPFail(OnnxpyError):
    """An execution provider failed."""


class Terminated(Fail):
    """``RunOptions.terminate`` stopped a run (a :class:`Fail`, as onnxruntime raises)."""
