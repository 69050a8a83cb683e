"""``onnxruntime.transformers`` for clients of its IO-binding helper (Hugging Face optimum).

Only :mod:`onnxpy.transformers.io_binding_helper` is provided: onnxruntime's transformer
optimizer and benchmarking tools are not part of onnxpy (its own graph optimizer runs inside
every session; see docs/architecture.md).
"""
