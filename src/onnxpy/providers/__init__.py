"""Execution providers. CPU (NumPy) is built in; others register by name."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["CPU", "get_available_providers", "get_all_providers", "resolve_providers", "get_device"]

CPU = "CPUExecutionProvider"
_KNOWN = [
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "ROCMExecutionProvider",
    "OpenVINOExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    CPU,
]


def get_available_providers() -> list[str]:
    """Providers this installation can run on."""
    return [CPU]


def get_all_providers() -> list[str]:
    """Provider names onnxpy knows of (as onnxruntime lists its build-time set)."""
    return list(_KNOWN)


def get_device() -> str:
    return "CPU"


def resolve_providers(
    providers: Sequence[Any] | None, provider_options: Sequence[dict] | None = None
) -> tuple[list[str], list[dict[str, str]]]:
    """Names (and options) of the providers a session will use; unknown ones fall back to CPU."""
    if not providers:
        return [CPU], [{}]
    names: list[str] = []
    opts: list[dict[str, str]] = []
    for i, p in enumerate(providers):
        if isinstance(p, (tuple, list)):
            name, opt = p[0], dict(p[1]) if len(p) > 1 else {}
        else:
            name = p
            given = provider_options[i] if provider_options and i < len(provider_options) else {}
            opt = dict(given)
        if name not in get_available_providers():
            warnings.warn(
                f"Specified provider '{name}' is not in available provider names. "
                f"Available providers: '{', '.join(get_available_providers())}'",
                stacklevel=3,
            )
            continue
        if name not in names:
            names.append(name)
            opts.append({k: str(v) for k, v in opt.items()})
    if CPU not in names:
        names.append(CPU)
        opts.append({})
    return names, opts
