"""Front ends over well-kept converters: scikit-learn (skl2onnx), PyTorch and transformers
(torch.onnx). They only *write* models; onnxpy runs them. Each conversion names inputs and
outputs, gives the batch axis a symbolic name, and is validated against the source framework
unless asked not to. Re-exported by :mod:`onnxpy.tools`; converters are imported lazily.
"""

from __future__ import annotations

__all__: list[str] = []
