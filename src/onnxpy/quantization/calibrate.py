"""Calibration: run the float model on representative data in onnxpy and collect, per tensor,
the range its quantization should cover.

``CalibrationDataReader`` is onnxruntime's contract (``get_next()`` returns one feed dict, then
None), so existing readers work unchanged. The calibrators read every tensor they need from one
onnxpy session created with ``ORT_DISABLE_ALL``, which serves any value name directly: nothing is
added to the model, and a model over 2 GB is calibrated from its path.

* MinMax: the lowest and highest value seen (or their moving averages over batches);
* Percentile: the ``percentile`` of |x| from a histogram of ``num_bins`` bins;
* Entropy: the threshold whose quantization to ``num_quantized_bins`` levels loses least
  information (KL divergence of the |x| histogram, clipped outliers folded into the last bin).

Histogram ranges grow with the data: when a batch exceeds the current range the counts are
re-binned onto the wider one.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from onnx import ModelProto

from onnxpy.errors import InvalidArgument
from onnxpy.errors import NotImplemented as NotSupported
from onnxpy.quantization.config import CalibrationMethod

__all__ = [
    "CalibrationDataReader",
    "CalibraterBase",
    "MinMaxCalibrater",
    "EntropyCalibrater",
    "PercentileCalibrater",
    "TensorData",
    "TensorsData",
    "create_calibrator",
]

Progress = Callable[[int], None]


class CalibrationDataReader(ABC):
    """Feeds for calibration: ``get_next()`` returns ``{input name: array}`` or None at the end."""

    @abstractmethod
    def get_next(self) -> dict | None:
        """The next feed dict, or None when the data is exhausted."""

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        feed = self.get_next()
        if feed is None:
            raise StopIteration
        return feed

    def set_range(self, start_index: int, end_index: int) -> None:
        """Limit the reader to a slice of its data (readers that support it override this)."""
        return None


class TensorData:
    """One tensor's calibration result: ``lowest`` / ``highest`` (and ``hist`` / ``hist_edges``
    for histogram methods)."""

    def __init__(self, lowest: float, highest: float, **extra: Any) -> None:
        self.lowest = np.float32(lowest)
        self.highest = np.float32(highest)
        for k, v in extra.items():
            setattr(self, k, v)

    @property
    def range_value(self) -> tuple[np.float32, np.float32]:
        return self.lowest, self.highest

    def __repr__(self) -> str:
        return f"TensorData(lowest={self.lowest}, highest={self.highest})"


class TensorsData(dict):
    """{tensor name: TensorData} and the method that produced them."""

    def __init__(self, calibration_method: CalibrationMethod, data: dict[str, TensorData]):
        super().__init__(data)
        self.calibration_method = calibration_method


class CalibraterBase:
    """Collects statistics of the tensors read or written by ``op_types_to_calibrate`` nodes
    (all nodes when None) over the batches of a data reader."""

    method = CalibrationMethod.MinMax

    def __init__(
        self,
        model_path: str | Path | ModelProto,
        op_types_to_calibrate: Sequence[str] | None = None,
        augmented_model_path: str = "augmented_model.onnx",
        symmetric: bool = False,
        use_external_data_format: bool = False,
        per_channel: bool = False,
    ) -> None:
        self.model_path = model_path
        self.op_types_to_calibrate = set(op_types_to_calibrate or [])
        self.augmented_model_path = augmented_model_path  # unused: nothing is augmented
        self.symmetric = symmetric
        self.use_external_data_format = use_external_data_format
        self.per_channel = per_channel
        self.tensors_to_calibrate: list[str] | None = None
        self._session = None
        self.batches = 0

    # -- which tensors ---------------------------------------------------------------------------
    def select_tensors_to_calibrate(self, model: ModelProto) -> list[str]:
        """Inputs and outputs of the selected nodes that are not constants."""
        g = model.graph
        constants = {t.name for t in g.initializer}
        constants |= {o for n in g.node if n.op_type == "Constant" for o in n.output}
        names: dict[str, None] = {}
        for n in g.node:
            if self.op_types_to_calibrate and n.op_type not in self.op_types_to_calibrate:
                continue
            for v in (*n.input, *n.output):
                if v and v not in constants:
                    names[v] = None
        return list(names)

    def set_tensors(self, names: Iterable[str]) -> None:
        """Calibrate exactly these tensors (the quantizer names what it will quantize)."""
        self.tensors_to_calibrate = list(dict.fromkeys(names))

    def create_inference_session(self):
        import onnxpy

        so = onnxpy.SessionOptions()
        so.graph_optimization_level = onnxpy.GraphOptimizationLevel.ORT_DISABLE_ALL
        source = self.model_path
        if isinstance(source, ModelProto):
            source = source.SerializeToString()
        elif isinstance(source, os.PathLike):
            source = str(source)
        self._session = onnxpy.InferenceSession(source, sess_options=so)
        return self._session

    # -- collecting ------------------------------------------------------------------------------
    def collect_data(self, data_reader: CalibrationDataReader, progress: Progress | None = None):
        """Run every feed of ``data_reader`` and update each tensor's statistics."""
        if self._session is None:
            self.create_inference_session()
        if self.tensors_to_calibrate is None:
            from onnxpy.quantization.model_io import load

            self.tensors_to_calibrate = self.select_tensors_to_calibrate(load(self.model_path))
        inputs = {i.name for i in self._session.get_inputs()}
        wanted = [n for n in self.tensors_to_calibrate if n not in inputs]
        while True:
            feed = data_reader.get_next()
            if feed is None:
                break
            values = dict(zip(wanted, self._session.run(wanted, feed))) if wanted else {}
            for name in self.tensors_to_calibrate:
                v = feed.get(name) if name in inputs else values.get(name)
                if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size:
                    self.update(name, v.astype(np.float32, copy=False))
            self.batches += 1
            if progress is not None:
                progress(1)
        if self.batches == 0:
            raise InvalidArgument("the calibration data reader returned no data")

    @abstractmethod
    def update(self, name: str, value: np.ndarray) -> None: ...

    @abstractmethod
    def compute_data(self) -> TensorsData: ...

    def clear_collected_data(self) -> None:
        self.batches = 0


class MinMaxCalibrater(CalibraterBase):
    """Lowest and highest values; with ``moving_average`` an exponential average of each
    batch's extremes (``averaging_constant`` is the new batch's weight)."""

    def __init__(
        self,
        model_path,
        op_types_to_calibrate=None,
        augmented_model_path="augmented_model.onnx",
        symmetric=False,
        use_external_data_format=False,
        moving_average=False,
        averaging_constant=0.01,
        max_intermediate_outputs=None,
        per_channel=False,
    ) -> None:
        super().__init__(
            model_path,
            op_types_to_calibrate,
            augmented_model_path,
            symmetric,
            use_external_data_format,
            per_channel,
        )
        if moving_average and not 0 <= averaging_constant <= 1:
            raise InvalidArgument("averaging_constant must be between 0 and 1")
        self.moving_average = moving_average
        self.averaging_constant = averaging_constant
        self.max_intermediate_outputs = max_intermediate_outputs
        self.ranges: dict[str, list[float]] = {}

    def update(self, name: str, value: np.ndarray) -> None:
        lo, hi = float(value.min()), float(value.max())
        seen = self.ranges.get(name)
        if seen is None:
            self.ranges[name] = [lo, hi]
        elif self.moving_average:
            c = self.averaging_constant
            seen[0] += c * (lo - seen[0])
            seen[1] += c * (hi - seen[1])
        else:
            seen[0] = min(seen[0], lo)
            seen[1] = max(seen[1], hi)

    def compute_data(self) -> TensorsData:
        data = {}
        for name, (lo, hi) in self.ranges.items():
            if self.symmetric:
                m = max(abs(lo), abs(hi))
                lo, hi = -m, m
            data[name] = TensorData(lo, hi)
        return TensorsData(CalibrationMethod.MinMax, data)


class _Histogram:
    """Counts of |x| over [0, top] in ``bins`` bins, plus whether x was ever negative."""

    def __init__(self, bins: int) -> None:
        self.bins = bins
        self.counts = np.zeros(bins, dtype=np.float64)
        self.top = 0.0
        self.negative = False
        self.lowest = 0.0
        self.highest = 0.0

    def add(self, x: np.ndarray) -> None:
        lo, hi = float(x.min()), float(x.max())
        self.lowest, self.highest = min(self.lowest, lo), max(self.highest, hi)
        self.negative |= lo < 0
        a = np.abs(x).ravel()
        top = max(abs(lo), abs(hi))
        if top > self.top:
            if self.top > 0 and self.counts.any():
                old = np.linspace(0, self.top, self.bins + 1)
                centres = (old[:-1] + old[1:]) / 2
                self.counts, _ = np.histogram(
                    centres, bins=self.bins, range=(0, top), weights=self.counts
                )
            self.top = top
        if self.top == 0:
            self.counts[0] += a.size
            return
        counts, _ = np.histogram(a, bins=self.bins, range=(0, self.top))
        self.counts += counts

    def edges(self) -> np.ndarray:
        return np.linspace(0, self.top, self.bins + 1)

    def as_range(self, threshold: float, symmetric: bool) -> TensorData:
        lo = -threshold if (self.negative or symmetric) else 0.0
        lo = max(lo, self.lowest) if not symmetric else lo
        hi = min(threshold, self.highest) if not symmetric else threshold
        return TensorData(lo, hi, hist=self.counts.copy(), hist_edges=self.edges())


class _HistogramCalibrater(CalibraterBase):
    def __init__(self, model_path, op_types, augmented, external, symmetric, num_bins) -> None:
        super().__init__(model_path, op_types, augmented, symmetric, external)
        if num_bins < 2:
            raise InvalidArgument("num_bins must be at least 2")
        self.num_bins = int(num_bins)
        self.histograms: dict[str, _Histogram] = {}

    def update(self, name: str, value: np.ndarray) -> None:
        h = self.histograms.get(name)
        if h is None:
            h = self.histograms[name] = _Histogram(self.num_bins)
        h.add(value)


class PercentileCalibrater(_HistogramCalibrater):
    """The ``percentile`` (in %) of |x| as the range's bound."""

    method = CalibrationMethod.Percentile

    def __init__(
        self,
        model_path,
        op_types_to_calibrate=None,
        augmented_model_path="augmented_model.onnx",
        use_external_data_format=False,
        method="percentile",
        symmetric=False,
        num_bins=2048,
        percentile=99.999,
    ) -> None:
        super().__init__(
            model_path,
            op_types_to_calibrate,
            augmented_model_path,
            use_external_data_format,
            symmetric,
            num_bins,
        )
        if not 0 < percentile <= 100:
            raise InvalidArgument("percentile must be in (0, 100]")
        self.percentile = float(percentile)

    def compute_data(self) -> TensorsData:
        data = {}
        for name, h in self.histograms.items():
            cdf = np.cumsum(h.counts)
            total = cdf[-1] if cdf.size else 0
            if total == 0 or h.top == 0:
                data[name] = TensorData(0.0, 0.0)
                continue
            i = int(np.searchsorted(cdf, total * self.percentile / 100.0))
            threshold = h.edges()[min(i + 1, h.bins)]
            data[name] = h.as_range(threshold, self.symmetric)
        return TensorsData(CalibrationMethod.Percentile, data)


class EntropyCalibrater(_HistogramCalibrater):
    """The clipping threshold minimizing KL(P || Q) between the |x| histogram clipped there
    (outliers added to its last bin) and its quantization to ``num_quantized_bins`` levels."""

    method = CalibrationMethod.Entropy

    def __init__(
        self,
        model_path,
        op_types_to_calibrate=None,
        augmented_model_path="augmented_model.onnx",
        use_external_data_format=False,
        method="entropy",
        symmetric=False,
        num_bins=128,
        num_quantized_bins=128,
    ) -> None:
        super().__init__(
            model_path,
            op_types_to_calibrate,
            augmented_model_path,
            use_external_data_format,
            symmetric,
            num_bins,
        )
        self.num_quantized_bins = int(num_quantized_bins)

    def compute_data(self) -> TensorsData:
        data = {}
        for name, h in self.histograms.items():
            if h.top == 0 or not h.counts.any():
                data[name] = TensorData(0.0, 0.0)
                continue
            i = best_kl_bins(h.counts, self.num_quantized_bins)
            data[name] = h.as_range(h.edges()[i], self.symmetric)
        return TensorsData(CalibrationMethod.Entropy, data)


def best_kl_bins(counts: np.ndarray, levels: int) -> int:
    """The number of leading bins whose clipped histogram quantizes with least KL loss."""
    n = counts.size
    if n <= levels:
        return n
    best, best_kl = n, np.inf
    tail = np.concatenate([np.cumsum(counts[::-1])[::-1], [0.0]])
    for i in range(levels, n + 1):
        p = counts[:i].astype(np.float64)
        p[-1] += tail[i]  # outliers clipped into the last bin
        # Q: P merged into `levels` groups, each group's mass spread over its non-empty bins.
        starts = (np.arange(levels) * i) // levels
        sizes = np.diff(np.append(starts, i))
        present = p > 0
        mass = np.add.reduceat(p, starts)
        filled = np.add.reduceat(present.astype(np.float64), starts)
        q = np.repeat(mass / np.maximum(filled, 1), sizes) * present
        ps, qs = p[present] / p.sum(), q[present] / q.sum()
        kl = float(np.sum(ps * np.log(ps / qs)))
        if kl < best_kl:
            best, best_kl = i, kl
    return best


def create_calibrator(
    model: str | Path | ModelProto,
    op_types_to_calibrate: Sequence[str] | None = None,
    augmented_model_path: str = "augmented_model.onnx",
    calibrate_method: CalibrationMethod = CalibrationMethod.MinMax,
    use_external_data_format: bool = False,
    providers: Sequence[str] | None = None,
    extra_options: dict | None = None,
) -> CalibraterBase:
    """The calibrator for ``calibrate_method``; ``extra_options`` keys as onnxruntime's
    (symmetric, moving_average, averaging_constant, num_bins, num_quantized_bins, percentile)."""
    opts = dict(extra_options or {})
    symmetric = bool(opts.get("symmetric", False))
    common = (model, op_types_to_calibrate, augmented_model_path)
    if calibrate_method == CalibrationMethod.MinMax:
        return MinMaxCalibrater(
            *common,
            symmetric=symmetric,
            use_external_data_format=use_external_data_format,
            moving_average=bool(opts.get("moving_average", False)),
            averaging_constant=float(opts.get("averaging_constant", 0.01)),
            max_intermediate_outputs=opts.get("max_intermediate_outputs"),
            per_channel=bool(opts.get("per_channel", False)),
        )
    if calibrate_method == CalibrationMethod.Entropy:
        return EntropyCalibrater(
            *common,
            use_external_data_format=use_external_data_format,
            symmetric=symmetric,
            num_bins=int(opts.get("num_bins", 128)),
            num_quantized_bins=int(opts.get("num_quantized_bins", 128)),
        )
    if calibrate_method == CalibrationMethod.Percentile:
        return PercentileCalibrater(
            *common,
            use_external_data_format=use_external_data_format,
            symmetric=symmetric,
            num_bins=int(opts.get("num_bins", 2048)),
            percentile=float(opts.get("percentile", 99.999)),
        )
    raise NotSupported(f"calibration method {calibrate_method} is not supported by onnxpy")
