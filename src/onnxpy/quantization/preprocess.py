"""``quant_pre_process``: prepare a float model for quantization (onnxruntime's name and
arguments). onnxpy's basic optimizer folds constants, removes identities and dead code, and
cancels transposes (standard ONNX out, so any runtime reads the result); ONNX shape inference
with data propagation then records every value's type and shape, which the quantizer and
calibration use. Symbolic shape inference options are accepted; onnx's data propagation
covers the shape computations they serve.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from onnx import ModelProto

from onnxpy.errors import InvalidArgument
from onnxpy.quantization.model_io import load

__all__ = ["quant_pre_process"]


def quant_pre_process(
    input_model: str | os.PathLike | ModelProto | None = None,
    output_model_path: str | os.PathLike | None = None,
    skip_optimization: bool = False,
    skip_onnx_shape: bool = False,
    skip_symbolic_shape: bool = False,
    auto_merge: bool = False,
    int_max: int = 2**31 - 1,
    guess_output_rank: bool = False,
    verbose: int = 0,
    save_as_external_data: bool = False,
    all_tensors_to_one_file: bool = False,
    external_data_location: str | None = None,
    external_data_size_threshold: int = 1024,
    **deprecated_kwargs,
) -> None:
    """Optimize (basic level) and shape-infer ``input_model``; write ``output_model_path``."""
    if input_model is None:
        input_model = deprecated_kwargs.pop("input_model_path", None)
    if input_model is None or output_model_path is None:
        raise InvalidArgument("quant_pre_process needs input_model and output_model_path")
    if deprecated_kwargs:
        raise InvalidArgument(f"unknown arguments: {', '.join(sorted(deprecated_kwargs))}")
    model = load(input_model)
    base = str(Path(input_model).parent) if not isinstance(input_model, ModelProto) else None
    if not skip_optimization:
        from onnxpy.passes import optimize
        from onnxpy.passes.base import BASIC

        model = optimize(model, BASIC, base_dir=base, inplace=True)
    if not skip_onnx_shape:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    path = Path(output_model_path)
    if save_as_external_data:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=all_tensors_to_one_file,
            location=external_data_location or path.name + ".data",
            size_threshold=external_data_size_threshold,
        )
    else:
        from onnxpy.quantization.model_io import save

        save(model, path)
