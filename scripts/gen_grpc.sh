#!/usr/bin/env bash
# Regenerate onnxpy's gRPC modules from src/onnxpy/serving/grpc/inference.proto.
#
# The generated files are committed, so neither installing nor running onnxpy needs grpcio-tools.
# They are generated with grpcio-tools 1.74 (protobuf 6.31 gencode): that code runs on protobuf
# 6.31+ and 7.x and on grpcio >= 1.74, the floors the `serve` extra declares. Newer grpcio-tools
# write protobuf-7 gencode, which refuses protobuf 6 (tritonclient needs protobuf < 7).
#
# One edit follows generation: the messages are registered in a descriptor pool of their own
# instead of protobuf's default pool, because tritonclient registers the same full names
# (inference.ModelInferRequest, ...) there from its own files, and a process holding both (a test,
# a client embedding the server) would otherwise fail with "duplicate symbol". The wire format
# does not carry pools, only field numbers, so both interoperate.
#
# Usage (from the project root): bash scripts/gen_grpc.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
"$venv/bin/pip" install -q "grpcio-tools==1.74.0"
out=src/onnxpy/serving/grpc
"$venv/bin/python" -m grpc_tools.protoc -I src --python_out=src --pyi_out=src \
  --grpc_python_out=src "$out/inference.proto"
sed -i \
  -e 's/^_sym_db = _symbol_database.Default()$/_sym_db = _symbol_database.Default()\n# onnxpy: a pool of our own (see scripts\/gen_grpc.sh).\n_POOL = _descriptor_pool.DescriptorPool()/' \
  -e 's/_descriptor_pool.Default().AddSerializedFile(/_POOL.AddSerializedFile(/' \
  "$out/inference_pb2.py"
grep -q "_POOL.AddSerializedFile" "$out/inference_pb2.py"
echo "regenerated $out/inference_pb2.py, inference_pb2.pyi, inference_pb2_grpc.py"
