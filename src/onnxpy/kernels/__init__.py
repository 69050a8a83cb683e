"""The operator library. Importing it registers every kernel module of every domain package."""

from __future__ import annotations

import importlib
import pkgutil

from onnxpy.kernels.registry import NodeInfo, lookup, register, registered_ops

__all__ = ["NodeInfo", "lookup", "register", "registered_ops", "load_all"]

_DOMAIN_PACKAGES = ("onnxpy.kernels.ai_onnx", "onnxpy.kernels.ai_onnx_ml")
_loaded = False


def load_all() -> None:
    """Import each family module once (one module per operator family, found by listing)."""
    global _loaded
    if _loaded:
        return
    for pkg_name in _DOMAIN_PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{pkg_name}.{mod.name}")
    _loaded = True


load_all()
