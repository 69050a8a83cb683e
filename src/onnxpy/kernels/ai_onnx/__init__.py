"""Kernels of the default domain (ai.onnx), one module per operator family."""
