"""Level-2 (ORT_ENABLE_EXTENDED and above) passes: fusions into fewer standard operators."""

from __future__ import annotations

from onnxpy.passes.base import Pass
from onnxpy.passes.fusion.conv_add_mul import ConvAddMulFusion
from onnxpy.passes.fusion.conv_bn import ConvBatchNormFusion
from onnxpy.passes.fusion.matmul_add import MatMulAddFusion

__all__ = ["fusion_passes", "ConvAddMulFusion", "ConvBatchNormFusion", "MatMulAddFusion"]


def fusion_passes() -> list[Pass]:
    return [ConvBatchNormFusion(), ConvAddMulFusion(), MatMulAddFusion()]
