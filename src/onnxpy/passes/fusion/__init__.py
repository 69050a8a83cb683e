"""Level-2 (ORT_ENABLE_EXTENDED and above) passes: fusions into fewer standard operators."""

from __future__ import annotations

from onnxpy.passes.base import Pass
from onnxpy.passes.fusion.attention import AttentionFusion
from onnxpy.passes.fusion.conv_activation import ConvActivationFusion, GemmActivationFusion
from onnxpy.passes.fusion.conv_add_mul import ConvAddMulFusion
from onnxpy.passes.fusion.conv_bn import ConvBatchNormFusion
from onnxpy.passes.fusion.dynamic_quant import DynamicMatMulFusion, DynamicQuantizeMatMulFusion
from onnxpy.passes.fusion.float16_compute import Float16Compute
from onnxpy.passes.fusion.gelu import BiasGeluFusion, GeluFusion
from onnxpy.passes.fusion.layer_norm import LayerNormFusion
from onnxpy.passes.fusion.matmul_add import MatMulAddFusion
from onnxpy.passes.fusion.pad_conv import PadConvFusion
from onnxpy.passes.fusion.qdq import QDQFusion
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
    "QDQFusion",
    "DynamicMatMulFusion",
    "DynamicQuantizeMatMulFusion",
    "Float16Compute",
    "early_fusion_passes",
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


def early_fusion_passes() -> list[Pass]:
    """Rewrites that must see the model before constant folding: float16 regions computed in
    float32, QDQ pairs and dynamic-quantization chains -> quantized kernels."""
    return [
        Float16Compute(),
        QDQFusion(),
        DynamicMatMulFusion(),
        DynamicQuantizeMatMulFusion(),
    ]
