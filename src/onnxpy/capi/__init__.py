"""Mirror of ``onnxruntime.capi`` so that imports of its error module carry over."""
