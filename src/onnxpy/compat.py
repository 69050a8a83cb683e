"""onnxpy standing in for onnxruntime: the module alias, version and build information.

``import onnxpy as rt`` is the one-line change for code you own. For code you do not own
(a library that does ``import onnxruntime``), :func:`install_as_onnxruntime` makes this process's
``onnxruntime`` and its submodules at onnxruntime's paths (``onnxruntime.capi._pybind_state``,
``onnxruntime.capi.onnxruntime_inference_collection``, ``onnxruntime.transformers.
io_binding_helper``, ...) resolve to onnxpy, without installing anything under that name.

The alias reports ``__version__`` as the onnxruntime API version onnxpy implements
(``onnxpy.__ort_api_version__``), because that is what version-checking clients compare
against onnxruntime release numbers; ``onnxpy.__version__`` stays onnxpy's own release.
A submodule of onnxruntime that onnxpy does not provide (``onnxruntime.quantization``, the
``onnxruntime.transformers`` optimizer) fails to import with ModuleNotFoundError.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import platform
import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy as np

from onnxpy.version import ORT_API_VERSION, __version__

__all__ = [
    "ORT_SUBMODULES",
    "get_build_info",
    "get_version_string",
    "install_as_onnxruntime",
    "onnxruntime_alias",
    "set_seed",
]

# onnxruntime's module paths -> the onnxpy modules that serve them.
ORT_SUBMODULES = {
    "onnxruntime.capi": "onnxpy.capi",
    "onnxruntime.capi._pybind_state": "onnxpy.capi._pybind_state",
    "onnxruntime.capi.onnxruntime_pybind11_state": "onnxpy.capi.onnxruntime_pybind11_state",
    "onnxruntime.capi.onnxruntime_inference_collection": (
        "onnxpy.capi.onnxruntime_inference_collection"
    ),
    "onnxruntime.transformers": "onnxpy.transformers",
    "onnxruntime.transformers.io_binding_helper": "onnxpy.transformers.io_binding_helper",
}


def get_version_string() -> str:
    """The onnxruntime API version onnxpy implements (what onnxruntime reports as its own)."""
    return ORT_API_VERSION


def get_build_info() -> str:
    return (
        f"onnxpy Build Info: onnxpy {__version__}, onnxruntime API {ORT_API_VERSION}, "
        f"numpy {np.__version__}, python {platform.python_version()}, CPU (NumPy kernels)"
    )


def set_seed(seed: int) -> None:
    """Seed the random operators that have no ``seed`` attribute (RandomNormal, ...)."""
    from onnxpy.kernels.ai_onnx.random import set_default_seed

    set_default_seed(int(seed))


class _OnnxruntimeAlias(types.ModuleType):
    """The module ``import onnxruntime`` returns: onnxpy's names, onnxruntime's version."""

    def __getattr__(self, name: str) -> Any:
        import onnxpy

        try:
            return getattr(onnxpy, name)
        except AttributeError:
            raise AttributeError(
                f"onnxpy (standing in for onnxruntime) has no attribute '{name}'"
            ) from None

    def __dir__(self) -> list[str]:
        import onnxpy

        return sorted(set(dir(onnxpy)) | set(self.__dict__))


def _alias_module() -> _OnnxruntimeAlias:
    import onnxpy

    alias = _OnnxruntimeAlias("onnxruntime", onnxpy.__doc__)
    alias.__version__ = ORT_API_VERSION
    alias.__file__ = onnxpy.__file__
    # No search path: onnxruntime submodules that onnxpy lacks are not found, rather than
    # found as a second copy of some onnxpy module.
    alias.__path__ = []
    alias.__spec__ = importlib.machinery.ModuleSpec("onnxruntime", None, is_package=True)
    return alias


def install_as_onnxruntime() -> types.ModuleType:
    """Make ``import onnxruntime`` (and its submodules onnxpy serves) give onnxpy, in this
    process. Returns the ``onnxruntime`` module now in ``sys.modules``."""
    for ort_name, name in ORT_SUBMODULES.items():
        sys.modules[ort_name] = importlib.import_module(name)
    alias = _alias_module()
    sys.modules["onnxruntime"] = alias
    return alias


@contextlib.contextmanager
def onnxruntime_alias() -> Iterator[types.ModuleType]:
    """``install_as_onnxruntime()`` for the duration of a ``with`` block; the modules that
    were there before (a real onnxruntime, or none) are put back afterwards."""
    names = ["onnxruntime", *ORT_SUBMODULES]
    saved = {n: sys.modules[n] for n in names if n in sys.modules}
    try:
        yield install_as_onnxruntime()
    finally:
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)
