"""The gRPC adapter: ``inference.GRPCInferenceService`` over the data plane.

``inference.proto`` is onnxpy's own statement of the KServe v2 / Triton gRPC protocol (field
names and numbers as published, so tritonclient talks to it); ``inference_pb2`` and
``inference_pb2_grpc`` are generated from it by ``scripts/gen_grpc.sh`` and committed, so other
processes import them as ``onnxpy.serving.grpc.inference_pb2``. Their messages live in a
descriptor pool of their own, so they coexist with tritonclient's in one process.

:class:`~onnxpy.serving.grpc.servicer.InferenceServicer` wraps a
:class:`~onnxpy.serving.dataplane.DataPlane`;
:func:`~onnxpy.serving.grpc.servicer.create_grpc_server` builds a ``grpc.aio`` server
around it (limits, TLS, API key).
"""
