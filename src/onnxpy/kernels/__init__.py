"""The operator library: one module per operator family in each domain package.

Modules are imported when a model first needs one of their operators, through the catalog
(``catalog.py``: (domain, op_type) -> the module whose import registers it), so a session for
a linear model does not pay for importing convolutions, strings and tree ensembles (~100 ms of
``import onnxpy`` on 2 shared cores). An operator missing from the catalog (a module added
since it was written, or a registration from outside) loads every module once, so the
catalog being stale costs time, never a kernel; ``tests/kernels/test_catalog.py`` keeps it
current. :func:`load_all` imports everything (coverage tables, tests).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import threading
import warnings

from onnxpy.kernels import catalog
from onnxpy.kernels.registry import NodeInfo, lookup, register, registered_ops, set_loader

__all__ = ["NodeInfo", "lookup", "register", "registered_ops", "load_all", "DOMAIN_PACKAGES"]

DOMAIN_PACKAGES = (
    "onnxpy.kernels.ai_onnx",
    "onnxpy.kernels.ai_onnx_ml",
    "onnxpy.kernels.com_microsoft",
)
_loaded = False
_lock = threading.RLock()


def family_modules() -> list[str]:
    """Every family module's name, domain package by package, sorted (``_``-private excluded)."""
    names = []
    for pkg_name in DOMAIN_PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if not mod.name.startswith("_"):
                names.append(f"{pkg_name}.{mod.name}")
    return names


def _import(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception as e:
        # Development aid while several families are edited at once; never set in CI.
        if os.environ.get("ONNXPY_DEV_TOLERATE_BROKEN_KERNELS") != "1":
            raise
        warnings.warn(f"kernel module {name} failed to import: {e!r}", stacklevel=3)


def load_all() -> None:
    """Import each family module once."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if not _loaded:
            for name in family_modules():
                _import(name)
            _loaded = True


def _load_for(domain: str, op_type: str) -> bool:
    """Import what registers ``op_type``; everything if the catalog does not know it."""
    modules = catalog.MODULES.get((domain, op_type))
    if modules is None:
        if _loaded:
            return False
        load_all()
        return True
    with _lock:
        for name in modules:
            _import(name)
    return True


set_loader(_load_for, load_all)
