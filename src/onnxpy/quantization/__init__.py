"""Quantization and float16 conversion, with onnxruntime.quantization's API.

Models are written in standard ONNX (QDQ or QOperator format, dynamic MatMulInteger chains,
blocked DequantizeLinear for weight-only int4/int8) plus the com.microsoft QLinear operators
onnxruntime defines, so onnxruntime runs them too; calibration runs onnxpy sessions.
``report`` measures what quantization cost, node by node.
"""

from __future__ import annotations

from onnxpy.quantization.calibrate import (
    CalibraterBase,
    CalibrationDataReader,
    EntropyCalibrater,
    MinMaxCalibrater,
    PercentileCalibrater,
    TensorData,
    TensorsData,
    create_calibrator,
)
from onnxpy.quantization.config import (
    CalibrationMethod,
    DynamicQuantConfig,
    QuantConfig,
    QuantFormat,
    QuantizationMode,
    QuantType,
    StaticQuantConfig,
)
from onnxpy.quantization.dynamic import quantize_dynamic
from onnxpy.quantization.float16 import convert_float_to_float16
from onnxpy.quantization.preprocess import quant_pre_process
from onnxpy.quantization.report import QuantizationReport, meet_target, report
from onnxpy.quantization.static import quantize_static
from onnxpy.quantization.weight_only import quantize_weight_only

__all__ = [
    "CalibraterBase",
    "CalibrationDataReader",
    "CalibrationMethod",
    "DynamicQuantConfig",
    "EntropyCalibrater",
    "MinMaxCalibrater",
    "PercentileCalibrater",
    "QuantConfig",
    "QuantFormat",
    "QuantType",
    "QuantizationMode",
    "StaticQuantConfig",
    "TensorData",
    "TensorsData",
    "QuantizationReport",
    "convert_float_to_float16",
    "create_calibrator",
    "meet_target",
    "quant_pre_process",
    "quantize",
    "quantize_dynamic",
    "quantize_static",
    "quantize_weight_only",
    "report",
]


def quantize(model_input, model_output, quant_config: QuantConfig) -> None:
    """Quantize with a ``StaticQuantConfig`` or ``DynamicQuantConfig`` (onnxruntime's form)."""
    from onnxpy.errors import InvalidArgument

    common = dict(
        op_types_to_quantize=sorted(quant_config.op_types_to_quantize) or None,
        per_channel=quant_config.per_channel,
        reduce_range=quant_config.reduce_range,
        weight_type=quant_config.weight_type,
        nodes_to_quantize=sorted(quant_config.nodes_to_quantize) or None,
        nodes_to_exclude=sorted(quant_config.nodes_to_exclude) or None,
        use_external_data_format=quant_config.use_external_data_format,
        extra_options=quant_config.extra_options,
    )
    if isinstance(quant_config, StaticQuantConfig):
        quantize_static(
            model_input,
            model_output,
            quant_config.calibration_data_reader,
            quant_format=quant_config.quant_format,
            activation_type=quant_config.activation_type,
            calibrate_method=quant_config.calibrate_method,
            **common,
        )
    elif isinstance(quant_config, DynamicQuantConfig):
        quantize_dynamic(model_input, model_output, **common)
    else:
        raise InvalidArgument("quant_config must be a StaticQuantConfig or DynamicQuantConfig")
