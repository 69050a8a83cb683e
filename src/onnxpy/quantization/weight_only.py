"""Weight-only blocked quantization of MatMul (and Gemm) weights to int4 or int8, for
transformers whose time and memory go to large weight matrices.

Each constant ``[K, N]`` MatMul weight is cut into blocks of ``block_size`` rows along K; every
block of every column gets its own scale (and, when not symmetric, zero point), and the weight
is stored as ``DequantizeLinear(Wq, scales, [zero_points], axis=0, block_size=...)`` - standard
ONNX from opset 21, so any conforming runtime reads it. onnxpy folds the dequantization into a
float weight once, at session creation (float BLAS does the products); onnxruntime's own
weight-only form, com.microsoft MatMulNBits, runs in onnxpy too.
"""

from __future__ import annotations

import os
from pathlib import Path

import ml_dtypes
import numpy as np
from onnx import ModelProto, helper

from onnxpy.errors import InvalidArgument
from onnxpy.quantization.model_io import (
    GraphEdit,
    check_names,
    ensure_names,
    ensure_opset,
    load,
    save,
)

__all__ = ["quantize_weight_only", "blocked_quantize"]

_TYPES = {
    (4, True): (ml_dtypes.int4, -7, 7),
    (4, False): (ml_dtypes.uint4, 0, 15),
    (8, True): (np.int8, -127, 127),
    (8, False): (np.uint8, 0, 255),
}


def blocked_quantize(w: np.ndarray, bits: int, block_size: int, symmetric: bool):
    """(integers [K, N], scales [blocks, N], zero points [blocks, N] or None) of ``w``."""
    dtype, qmin, qmax = _TYPES[(bits, symmetric)]
    k, n = w.shape
    blocks = -(-k // block_size)
    padded = np.zeros((blocks * block_size, n), dtype=np.float64)
    padded[:k] = w
    grouped = padded.reshape(blocks, block_size, n)
    if symmetric:
        absmax = np.abs(grouped).max(axis=1)
        scale = absmax / qmax
        zero = None
    else:
        lo = np.minimum(grouped.min(axis=1), 0.0)
        hi = np.maximum(grouped.max(axis=1), 0.0)
        scale = (hi - lo) / (qmax - qmin)
    scale = np.where(scale == 0, 1.0, scale)
    if not symmetric:
        zero = np.clip(np.rint(qmin - lo / scale), qmin, qmax)
    z = 0.0 if zero is None else np.repeat(zero, block_size, axis=0)[:k]
    q = np.clip(np.rint(w / np.repeat(scale, block_size, axis=0)[:k]) + z, qmin, qmax)
    zp = None if zero is None else zero.astype(dtype)
    return q.astype(dtype), scale.astype(np.float32), zp


def quantize_weight_only(
    model_input: str | os.PathLike | ModelProto,
    model_output: str | os.PathLike,
    bits: int = 4,
    block_size: int = 32,
    symmetric: bool = True,
    nodes_to_exclude=None,
    use_external_data_format: bool = False,
) -> None:
    """Quantize every constant 2-D MatMul weight to ``bits`` (4 or 8) in blocks of
    ``block_size`` rows and write the model (opset raised to 21 if needed)."""
    if bits not in (4, 8):
        raise InvalidArgument(f"bits must be 4 or 8, got {bits}")
    if block_size < 16 or block_size & (block_size - 1):
        raise InvalidArgument(f"block_size must be a power of two >= 16, got {block_size}")
    model = ensure_opset(load(model_input), 21)
    ensure_names(model)
    exclude = set(nodes_to_exclude or [])
    check_names(model, exclude, "nodes_to_exclude")
    edit = GraphEdit(model)
    new_nodes = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or node.domain not in ("", "ai.onnx"):
            continue
        if node.name in exclude or len(node.input) < 2:
            continue
        w = edit.constant(node.input[1])
        if w is None or w.ndim != 2 or w.dtype != np.float32:
            continue
        trans_b = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
        q, scale, zero = blocked_quantize(w.T if trans_b else w, bits, block_size, symmetric)
        if trans_b:  # blocks run along K, axis 1 of a transposed [N, K] weight
            q, scale = np.ascontiguousarray(q.T), np.ascontiguousarray(scale.T)
            zero = None if zero is None else np.ascontiguousarray(zero.T)
        name = node.input[1]
        ins = [
            edit.add_initializer(f"{name}_quantized", q),
            edit.add_initializer(f"{name}_scale", scale),
        ]
        if zero is not None:
            ins.append(edit.add_initializer(f"{name}_zero_point", zero))
        out = edit.fresh(f"{name}_DequantizeLinear_Output")
        new_nodes.append(
            helper.make_node(
                "DequantizeLinear",
                ins,
                [out],
                name=edit.fresh(f"{name}_DequantizeLinear"),
                axis=1 if trans_b else 0,
                block_size=block_size,
            )
        )
        node.input[1] = out
    position = 0
    for n in new_nodes:
        model.graph.node.insert(position, n)
        position += 1
    edit.drop_unused_initializers()
    save(model, Path(model_output), use_external_data_format)
