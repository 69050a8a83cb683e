"""onnxpy's own version, and the version of onnxruntime's Python API it implements.

They are two numbers on purpose: ``__version__`` is onnxpy's release (what pip and
``importlib.metadata.version("onnxpy")`` report); ``ORT_API_VERSION`` is the onnxruntime
release whose Python API onnxpy follows and is tested against. Code that checks
``onnxruntime.__version__`` sees the latter when onnxpy stands in for onnxruntime
(``onnxpy.install_as_onnxruntime()``).
"""

from __future__ import annotations

__all__ = ["__version__", "ORT_API_VERSION"]

__version__ = "0.1.0"
ORT_API_VERSION = "1.32.0"
