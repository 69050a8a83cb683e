"""Transport-free inference requests and responses: what adapters hand the data plane.

REST and gRPC each translate their wire form into an :class:`InferRequest` (tensor data still
undecoded: a JSON ``data`` value or raw bytes) and turn the :class:`InferResponse` (NumPy
arrays) back into theirs. Decoding and every check of the tensors happen in the data plane, so
both protocols accept and refuse exactly the same requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["InputTensor", "RequestedOutput", "InferRequest", "OutputTensor", "InferResponse"]


@dataclass
class InputTensor:
    """One input as sent: exactly one of ``data`` (JSON value) or ``raw`` (bytes) is used."""

    name: str
    datatype: str
    shape: Any  # checked by the data plane: a list of non-negative ints
    data: Any = None
    raw: bytes | memoryview | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class RequestedOutput:
    """An output the client asked for; ``class_count`` > 0 asks for the top classes instead."""

    name: str
    class_count: int = 0
    binary: bool | None = None  # REST only: None means "the request's default"
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class InferRequest:
    model_name: str
    inputs: list[InputTensor]
    model_version: str = ""
    id: str = ""
    outputs: list[RequestedOutput] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class OutputTensor:
    name: str
    datatype: str
    shape: list[int]
    array: np.ndarray
    requested: RequestedOutput | None = None


@dataclass
class InferResponse:
    model_name: str
    model_version: str
    outputs: list[OutputTensor]
    id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
