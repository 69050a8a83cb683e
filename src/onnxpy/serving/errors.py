"""The serving errors and the one table mapping every error class to HTTP status and gRPC code.

Everything below the adapters raises onnxpy errors (:mod:`onnxpy.errors` plus the few serving
classes here); REST and gRPC look the class up in :data:`STATUS_TABLE` and answer
``{"error": message}`` or abort the call with the code. A class not in the table falls back to
its nearest listed base class; anything that is not an onnxpy error is a server bug (500 /
INTERNAL, logged with its traceback, the client sees only a one-line message).
"""

from __future__ import annotations

from onnxpy.errors import (
    EngineError,
    Fail,
    InvalidArgument,
    InvalidGraph,
    InvalidProtobuf,
    NoSuchFile,
    NotImplemented,
    OnnxpyError,
    RuntimeException,
)

__all__ = [
    "ModelNotFound",
    "Unavailable",
    "Unsupported",
    "RequestTooLarge",
    "Unauthenticated",
    "ModelLoadError",
    "STATUS_TABLE",
    "status_of",
    "http_status",
    "grpc_code",
]


class ModelNotFound(OnnxpyError):
    """No model, or no such version of a model, in the repository."""


class Unavailable(OnnxpyError):
    """The server cannot take the request now: queue full, model loading or unloading, draining."""


class Unsupported(OnnxpyError):
    """A protocol feature or extension onnxpy does not offer (shared memory, sequences, ...)."""


class RequestTooLarge(InvalidArgument):
    """The request body (or its decompressed form) is over ``max_request_size``."""


class Unauthenticated(OnnxpyError):
    """The route needs the API key and the request did not carry it."""


class ModelLoadError(InvalidArgument):
    """A model could not be loaded (bad config, invalid ONNX, unusable inputs or outputs)."""


# (error class, HTTP status, gRPC status code name): most specific classes first.
STATUS_TABLE: tuple[tuple[type[BaseException], int, str], ...] = (
    (RequestTooLarge, 413, "RESOURCE_EXHAUSTED"),
    (ModelLoadError, 400, "INVALID_ARGUMENT"),
    (ModelNotFound, 404, "NOT_FOUND"),
    (Unavailable, 503, "UNAVAILABLE"),
    (Unsupported, 501, "UNIMPLEMENTED"),
    (Unauthenticated, 401, "UNAUTHENTICATED"),
    (InvalidArgument, 400, "INVALID_ARGUMENT"),
    (NoSuchFile, 400, "INVALID_ARGUMENT"),
    (InvalidProtobuf, 400, "INVALID_ARGUMENT"),
    (InvalidGraph, 400, "INVALID_ARGUMENT"),
    (NotImplemented, 400, "INVALID_ARGUMENT"),
    # A kernel failing on data that passed validation, or an engine fault: the server's side.
    (Fail, 500, "INTERNAL"),
    (RuntimeException, 500, "INTERNAL"),
    (EngineError, 500, "INTERNAL"),
    (OnnxpyError, 500, "INTERNAL"),
)


def status_of(error: BaseException) -> tuple[int, str]:
    """(HTTP status, gRPC code name) of an error; 500 / INTERNAL for anything unexpected."""
    for cls, http, code in STATUS_TABLE:
        if isinstance(error, cls):
            return http, code
    return 500, "INTERNAL"


def http_status(error: BaseException) -> int:
    return status_of(error)[0]


def grpc_code(error: BaseException) -> str:
    return status_of(error)[1]
