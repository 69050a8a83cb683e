"""Level-2 (ORT_ENABLE_EXTENDED and above) passes: fusions into fewer standard operators."""

from __future__ import annotations

from onnxpy.passes.base import Pass
from onnxpy.passes.fusion.attention import AttentionFusion
from onnxpy.passes.fusion.conv_activation import ConvActivationFusion, GemmActivationFusion
from onnxpy.passes.fusion.conv_add_mul import ConvAddMulFusion
from onnxpy.passes.fusion.conv_bn import ConvBatchNormFusion
from onnxpy.passes.fusion.gelu import BiasGeluFusion, GeluFusion
from onnxpy.passes.fusion.layer_norm import LayerNormFusion
from onnxpy.passes.fusion.matmul_add import MatMulAddFusion
from onnxpy.passes.fusion.pad_conv import PadConvFusion
from onnxpy.passes.fusion.scan_cdist import ScanDistanceFusion
from onnxpy.passes.fusion.skip_layer_norm import SkipLayerNormFusion

__all__ = [
    "fusion_passes",
    "AttentionFusion",
    "ConvActivationFusion",
    "GemmActivationFusion",
    "ConvAddMulFusion",
    "ConvBatchNormFusion",
    "MatMulAddFusion",
    "PadConvFusion",
    "ScanDistanceFusion",
    "GeluFusion",
    "BiasGeluFusion",
    "SkipLayerNormFusion",
    "LayerNormFusion",
]


def fusion_passes() -> list[Pass]:
    return [
        GeluFusion(),
        BiasGeluFusion(),
        LayerNormFusion(),
        SkipLayerNormFusion(),
        AttentionFusion(),
        PadConvFusion(),
        ScanDistanceFusion(),
        ConvBatchNormFusion(),
        ConvAddMulFusion(),
        MatMulAddFusion(),
        ConvActivationFusion(),
        GemmActivationFusion(),
    ]
