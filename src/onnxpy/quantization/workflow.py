"""The file-to-file workflow behind ``onnxpy quantize``: read calibration data from .npz files,
quantize in one of four modes, optionally report the cost and leave the worst nodes in float
until a target agreement is met.

Calibration data: a ``.npz`` file holding one array per model input, samples along the first
axis (fed in batches of the model's fixed batch size, or ``batch`` samples when it is
symbolic), or a folder of ``.npz`` files, each one feed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from onnx import ModelProto

from onnxpy.errors import InvalidArgument, NoSuchFile
from onnxpy.quantization.calibrate import CalibrationDataReader
from onnxpy.quantization.config import CalibrationMethod, QuantFormat, QuantType
from onnxpy.quantization.model_io import load, save

__all__ = ["MODES", "FeedReader", "load_feeds", "random_feeds", "quantize_file"]

MODES = ("dynamic", "static", "int4", "fp16")
METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


class FeedReader(CalibrationDataReader):
    """A CalibrationDataReader over a list of feeds (rewindable with ``rewind``)."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = feeds
        self._it: Iterator = iter(feeds)

    def get_next(self) -> dict | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.feeds)

    def __len__(self) -> int:
        return len(self.feeds)


def _input_specs(model: ModelProto) -> dict[str, tuple[np.dtype, list]]:
    from onnx.helper import tensor_dtype_to_np_dtype

    inits = {t.name for t in model.graph.initializer}
    specs = {}
    for v in model.graph.input:
        if v.name in inits or not v.type.HasField("tensor_type"):
            continue
        tt = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        specs[v.name] = (np.dtype(tensor_dtype_to_np_dtype(tt.elem_type)), dims)
    return specs


def load_feeds(path: str | os.PathLike, model: ModelProto, batch: int = 16) -> list[dict]:
    """Feeds from a .npz file (samples along axis 0) or a folder of .npz files (one feed each)."""
    path = Path(path)
    specs = _input_specs(model)
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        if not files:
            raise InvalidArgument(f"no .npz files in {path}")
        feeds = []
        for f in files:
            with np.load(f, allow_pickle=False) as z:
                feeds.append({k: _typed(z[k], specs, k, f) for k in z.files})
        return feeds
    if not path.is_file():
        raise NoSuchFile(f"no calibration data at {path}")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: _typed(z[k], specs, k, path) for k in z.files}
    n = {a.shape[0] for a in arrays.values()}
    if len(n) != 1:
        raise InvalidArgument(f"{path}: arrays have different sample counts {sorted(n)}")
    total = n.pop()
    first = {specs[k][1][0] for k in arrays if specs[k][1]}
    step = first.pop() if len(first) == 1 and isinstance(next(iter(first), None), int) else batch
    step = max(1, int(step or batch))
    return [
        {k: a[i : i + step] for k, a in arrays.items()} for i in range(0, total - step + 1, step)
    ] or [arrays]


def _typed(a: np.ndarray, specs: dict, name: str, source) -> np.ndarray:
    if name not in specs:
        raise InvalidArgument(
            f"{source}: '{name}' is not an input of the model ({', '.join(specs)})"
        )
    return a.astype(specs[name][0], copy=False)


def random_feeds(model: ModelProto, count: int = 8, batch: int = 1, seed: int = 0) -> list[dict]:
    """Seeded random feeds for the model's inputs (symbolic dims -> ``batch``)."""
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(count):
        feed = {}
        for name, (dtype, dims) in _input_specs(model).items():
            shape = [d if d else batch for d in dims]
            if dtype.kind == "f":
                feed[name] = rng.standard_normal(shape).astype(dtype)
            elif dtype.kind in "iu":
                feed[name] = rng.integers(0, 10, size=shape).astype(dtype)
            else:
                feed[name] = rng.integers(0, 2, size=shape).astype(dtype)
        feeds.append(feed)
    return feeds


def quantize_file(
    model: str | os.PathLike,
    output: str | os.PathLike,
    mode: str = "dynamic",
    calibration_data: str | os.PathLike | None = None,
    per_channel: bool = False,
    exclude: tuple[str, ...] = (),
    quant_format: str = "qdq",
    method: str = "minmax",
    block_size: int = 32,
    report: bool = False,
    target_agreement: float | None = None,
    progress: Callable[[int], None] | None = None,
    on_calibration_start: Callable[[int], None] | None = None,
):
    """Quantize ``model`` into ``output``; returns the QuantizationReport when one was asked
    for (``report`` or ``target_agreement``), else None."""
    from onnxpy.quantization import dynamic, static, weight_only
    from onnxpy.quantization.float16 import convert_float_to_float16
    from onnxpy.quantization.report import meet_target
    from onnxpy.quantization.report import report as make_report

    if mode not in MODES:
        raise InvalidArgument(f"mode must be one of {', '.join(MODES)}, got '{mode}'")
    float_model = load(model)
    feeds = load_feeds(calibration_data, float_model) if calibration_data else None
    if mode == "static" and feeds is None:
        raise InvalidArgument("--mode static needs --calibration-data")
    excluded = set(exclude)
    if mode == "static":
        fmt = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}.get(quant_format.lower())
        if fmt is None or method not in METHODS:
            raise InvalidArgument(f"unknown format '{quant_format}' or method '{method}'")
        s = static.static_settings(
            fmt,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            nodes_to_exclude=excluded,
        )
        prepared = load(model)
        from onnxpy.quantization.model_io import ensure_names

        ensure_names(prepared)
        if on_calibration_start is not None:
            on_calibration_start(len(feeds))
        tensors = static._tensors_to_calibrate(prepared, s)
        ranges = static.calibrate(
            model, FeedReader(feeds), METHODS[method], tensors, s.options, progress
        )

        def build(nodes: set[str]) -> ModelProto:
            s.nodes_to_exclude = excluded | nodes
            return static.build_static(load(prepared), ranges, s)

    elif mode == "dynamic":

        def build(nodes: set[str]) -> ModelProto:
            return dynamic.build_dynamic(
                load(float_model), per_channel=per_channel, nodes_to_exclude=excluded | nodes
            )

    else:
        build = None
    if build is None:
        if mode == "int4":
            weight_only.quantize_weight_only(
                model, output, bits=4, block_size=block_size, nodes_to_exclude=excluded
            )
        else:
            save(convert_float_to_float16(model, node_block_list=excluded), Path(output))
        quantized = load(output)
    elif target_agreement is not None:
        data = feeds or random_feeds(float_model)
        quantized, result = meet_target(model, build, data, float(target_agreement))
        save(quantized, Path(output))
        return result
    else:
        save(build(set()), Path(output))
        quantized = None
    if not report and target_agreement is None:
        return None
    if target_agreement is not None:
        raise InvalidArgument("--target-agreement works with --mode static or dynamic")
    del quantized
    return make_report(model, output, feeds or random_feeds(float_model))
