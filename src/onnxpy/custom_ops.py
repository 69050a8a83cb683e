"""Custom operators: register a Python kernel and sessions run it like onnxpy's own.

onnxruntime loads custom operators from native libraries (``register_custom_ops_library``) or,
with onnxruntime-extensions, from Python functions. onnxpy's kernels are Python functions, so a
custom operator is one more entry in the same registry (kernels/registry.py)::

    import numpy as np
    import onnxpy

    @onnxpy.register_op("com.example", "Swish")
    def swish(x, /, *, beta=1.0):
        return x / (1.0 + np.exp(-beta * x))

A model whose node is ``com.example::Swish`` (and whose ``opset_import`` names the domain
``com.example``) now runs in any session created afterwards. The kernel contract is the one of
the built-in kernels (docs/kernels.md): inputs positional (``None`` for an omitted optional
input), attributes keyword-only with their defaults in the signature (an attribute the
signature does not name is refused when the session is created, unless the function takes
``**kwargs``), and the result is an array, or a tuple of arrays for several outputs.
``factory=True`` registers a function that receives a ``NodeInfo`` and the attributes once per
node, at session creation, and returns the function to run.

Registration is per process and permanent; a second kernel for the same domain, operator and
``since`` version is refused (register a higher ``since`` to change what newer models get).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onnxpy.errors import InvalidArgument
from onnxpy.kernels.registry import lookup, register

__all__ = ["register_op"]

KernelFn = Callable[..., Any]


def register_op(
    domain: str,
    op_type: str,
    fn: KernelFn | None = None,
    *,
    since: int = 1,
    factory: bool = False,
) -> Any:
    """Register ``fn`` as the kernel of ``domain::op_type`` from opset ``since`` of that domain
    on. Without ``fn``, returns a decorator. Returns ``fn``."""
    if not isinstance(domain, str):
        raise InvalidArgument(f"domain must be a string ('' for ai.onnx), got {domain!r}")
    if not isinstance(op_type, str) or not op_type:
        raise InvalidArgument(f"op_type must be a non-empty string, got {op_type!r}")
    if isinstance(since, bool) or not isinstance(since, int) or since < 1:
        raise InvalidArgument(f"since must be an opset version >= 1, got {since!r}")

    def add(kernel: KernelFn) -> KernelFn:
        if not callable(kernel):
            raise InvalidArgument(f"The kernel of {domain}::{op_type} must be callable")
        existing = lookup(domain, op_type, since)
        if existing is not None and existing.since == since:
            raise InvalidArgument(
                f"{domain or 'ai.onnx'}::{op_type} already has a kernel from opset {since} "
                f"({getattr(existing.fn, '__qualname__', existing.fn)}); register a higher "
                "'since' to replace it for newer models"
            )
        register(op_type, since=since, domain=domain, factory=factory)(kernel)
        return kernel

    return add if fn is None else add(fn)
