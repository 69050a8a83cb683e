"""``onnxruntime.capi._pybind_state``: the same namespace as ``onnxruntime_pybind11_state``."""

from onnxpy.capi.onnxruntime_pybind11_state import *  # noqa: F403
from onnxpy.capi.onnxruntime_pybind11_state import __all__  # noqa: F401
