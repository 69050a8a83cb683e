"""Kernels of the com.microsoft domain: the contrib operators onnxruntime's optimizer and converters emit."""
