"""The vocabulary of ``onnxpy.quantization``: onnxruntime.quantization's enums and config
classes with the same names, values and defaults, and the ``extra_options`` keys onnxpy honours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import ml_dtypes
import numpy as np
from onnx import TensorProto

from onnxpy.errors import InvalidArgument
from onnxpy.types import INTEGER_RANGES

__all__ = [
    "QuantType",
    "QuantFormat",
    "CalibrationMethod",
    "QuantizationMode",
    "QuantConfig",
    "StaticQuantConfig",
    "DynamicQuantConfig",
    "Options",
]


class QuantType(Enum):
    """Target element type of a quantized tensor."""

    QInt8 = 0
    QUInt8 = 1
    QFLOAT8E4M3FN = 2
    QInt16 = 3
    QUInt16 = 4
    QInt4 = 5
    QUInt4 = 6

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def from_string(t: str) -> QuantType:
        try:
            return QuantType[t]
        except KeyError:
            raise InvalidArgument(f"unknown QuantType '{t}'") from None

    @property
    def tensor_type(self) -> int:
        return _TENSOR_TYPES[self]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_DTYPES[self])

    def qrange(self, symmetric: bool = False, reduce_range: bool = False) -> tuple[int, int]:
        """(qmin, qmax): the type's range, made symmetric (-127..127 for int8) or 7-bit."""
        if self not in _BITS:
            raise InvalidArgument(f"{self} is not an integer quantization type")
        lo, hi = INTEGER_RANGES[self.dtype]
        if reduce_range:
            bits = _BITS[self] - 1
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if lo < 0 else (0, (1 << bits) - 1)
        if symmetric and lo < 0:
            lo = -hi
        return lo, hi


_TENSOR_TYPES = {
    QuantType.QInt8: TensorProto.INT8,
    QuantType.QUInt8: TensorProto.UINT8,
    QuantType.QFLOAT8E4M3FN: TensorProto.FLOAT8E4M3FN,
    QuantType.QInt16: TensorProto.INT16,
    QuantType.QUInt16: TensorProto.UINT16,
    QuantType.QInt4: TensorProto.INT4,
    QuantType.QUInt4: TensorProto.UINT4,
}
_DTYPES = {
    QuantType.QInt8: np.int8,
    QuantType.QUInt8: np.uint8,
    QuantType.QFLOAT8E4M3FN: ml_dtypes.float8_e4m3fn,
    QuantType.QInt16: np.int16,
    QuantType.QUInt16: np.uint16,
    QuantType.QInt4: ml_dtypes.int4,
    QuantType.QUInt4: ml_dtypes.uint4,
}
_BITS = {
    QuantType.QInt8: 8,
    QuantType.QUInt8: 8,
    QuantType.QInt16: 16,
    QuantType.QUInt16: 16,
    QuantType.QInt4: 4,
    QuantType.QUInt4: 4,
}


class QuantFormat(Enum):
    """QOperator: quantized operators (QLinearConv, ...); QDQ: QuantizeLinear/DequantizeLinear
    pairs around the float operators."""

    QOperator = 0
    QDQ = 1

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def from_string(f: str) -> QuantFormat:
        try:
            return QuantFormat[f]
        except KeyError:
            raise InvalidArgument(f"unknown QuantFormat '{f}'") from None


class CalibrationMethod(Enum):
    MinMax = 0
    Entropy = 1
    Percentile = 2
    Distribution = 3


class QuantizationMode(Enum):
    IntegerOps = 0
    QLinearOps = 1


@dataclass
class Options:
    """The ``extra_options`` onnxpy honours, with onnxruntime's documented defaults."""

    activation_symmetric: bool = False
    weight_symmetric: bool | None = None  # None: True for signed weights, as documented
    force_quantize_no_input_check: bool = False
    matmul_const_b_only: bool = False
    add_qdq_pair_to_weight: bool = False
    op_types_to_exclude_output_quantization: list[str] = field(default_factory=list)
    dedicated_qdq_pair: bool = False
    per_channel_axis: dict[str, int] = field(default_factory=dict)
    calib_symmetric: bool = False
    calib_moving_average: bool = False
    calib_moving_average_constant: float = 0.01
    calib_num_bins: int | None = None
    calib_num_quantized_bins: int | None = None
    calib_percentile: float | None = None
    keep_removable_activations: bool = False
    minimum_real_range: float | None = None
    tensor_overrides: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    _KEYS = {
        "ActivationSymmetric": "activation_symmetric",
        "WeightSymmetric": "weight_symmetric",
        "ForceQuantizeNoInputCheck": "force_quantize_no_input_check",
        "MatMulConstBOnly": "matmul_const_b_only",
        "AddQDQPairToWeight": "add_qdq_pair_to_weight",
        "OpTypesToExcludeOutputQuantization": "op_types_to_exclude_output_quantization",
        "DedicatedQDQPair": "dedicated_qdq_pair",
        "QDQOpTypePerChannelSupportToAxis": "per_channel_axis",
        "CalibTensorRangeSymmetric": "calib_symmetric",
        "CalibMovingAverage": "calib_moving_average",
        "CalibMovingAverageConstant": "calib_moving_average_constant",
        "CalibNumBins": "calib_num_bins",
        "CalibNumQuantizedBins": "calib_num_quantized_bins",
        "CalibPercentile": "calib_percentile",
        "QDQKeepRemovableActivations": "keep_removable_activations",
        "MinimumRealRange": "minimum_real_range",
        "TensorQuantOverrides": "tensor_overrides",
    }
    # Accepted and without effect on the result in onnxpy (memory/scheduling hints, or
    # options for other execution providers).
    _NO_EFFECT = frozenset(
        {
            "CalibStridedMinMax",
            "CalibMaxIntermediateOutputs",
            "EnableSubgraph",
            "extra.Sigmoid.nnapi",
            "UseQDQContribOps",
            "QDQDisableWeightAdjustForInt32Bias",
            "ActivationRestrictedAsymmetric",
        }
    )

    @classmethod
    def parse(cls, extra_options: dict[str, Any] | None, **defaults: Any) -> Options:
        opts = cls(**defaults)
        for key, value in (extra_options or {}).items():
            if key in cls._NO_EFFECT:
                continue
            attr = cls._KEYS.get(key)
            if attr is None:
                raise InvalidArgument(
                    f"extra_options key '{key}' is not supported by onnxpy.quantization "
                    f"(supported: {', '.join(sorted(cls._KEYS))})"
                )
            setattr(opts, attr, value)
        return opts


class QuantConfig:
    """What ``quantize(model_input, model_output, quant_config)`` needs (base of the two forms)."""

    def __init__(
        self,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=None,
        nodes_to_quantize=None,
        nodes_to_exclude=None,
        per_channel=False,
        reduce_range=False,
        use_external_data_format=False,
    ) -> None:
        self.op_types_to_quantize = set(op_types_to_quantize or [])
        self.per_channel = per_channel
        self.reduce_range = reduce_range
        self.weight_type = weight_type
        self.activation_type = activation_type
        self.nodes_to_quantize = set(nodes_to_quantize or [])
        self.nodes_to_exclude = set(nodes_to_exclude or [])
        self.use_external_data_format = use_external_data_format


class StaticQuantConfig(QuantConfig):
    def __init__(
        self,
        calibration_data_reader,
        calibrate_method=CalibrationMethod.MinMax,
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=None,
        nodes_to_quantize=None,
        nodes_to_exclude=None,
        per_channel=False,
        reduce_range=False,
        use_external_data_format=False,
        calibration_providers=None,
        extra_options=None,
    ) -> None:
        super().__init__(
            activation_type=activation_type,
            weight_type=weight_type,
            op_types_to_quantize=op_types_to_quantize,
            nodes_to_quantize=nodes_to_quantize,
            nodes_to_exclude=nodes_to_exclude,
            per_channel=per_channel,
            reduce_range=reduce_range,
            use_external_data_format=use_external_data_format,
        )
        self.calibration_data_reader = calibration_data_reader
        self.calibrate_method = calibrate_method
        self.quant_format = quant_format
        self.calibration_providers = calibration_providers
        self.extra_options = extra_options or {}


class DynamicQuantConfig(QuantConfig):
    def __init__(
        self,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=None,
        nodes_to_quantize=None,
        nodes_to_exclude=None,
        per_channel=False,
        reduce_range=False,
        use_external_data_format=False,
        extra_options=None,
    ) -> None:
        super().__init__(
            op_types_to_quantize=op_types_to_quantize,
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=weight_type,
            nodes_to_quantize=nodes_to_quantize,
            nodes_to_exclude=nodes_to_exclude,
            use_external_data_format=use_external_data_format,
        )
        self.extra_options = extra_options or {}
