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
from onnxpy.quantization.static import quantize_static

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
    "create_calibrator",
    "quantize_dynamic",
    "quantize_static",
]
