"""Kernels of the com.microsoft domain.

The contrib operators that onnxruntime's optimizer and common converters emit.
"""
