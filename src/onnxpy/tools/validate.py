"""Does the ONNX model compute what its source model computes? Run both on the same inputs.

The source is the framework object itself (a fitted scikit-learn estimator, a torch module) or a
spec (``sklearn:FILE``, ``torch:module:factory``, ``transformers:DIR[:task]``); the ONNX model
runs in onnxpy. Per output: max absolute and relative error and pass/fail at rtol/atol; labels
and other integer outputs must match exactly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from onnxpy.errors import InvalidArgument
from onnxpy.tools.io import load_model_proto, make_feeds, model_inputs

__all__ = ["OutputCheck", "ValidationReport", "validate_model", "load_source"]


@dataclass
class OutputCheck:
    name: str
    max_abs: float
    max_rel: float
    ok: bool
    note: str = ""


@dataclass
class ValidationReport:
    model: str
    source: str
    rtol: float
    atol: float
    batch: int
    outputs: list[OutputCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.outputs) and all(o.ok for o in self.outputs)

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def format(self) -> str:
        lines = [
            f"validate {self.model} against {self.source} ({self.batch} rows, "
            f"rtol={self.rtol:g} atol={self.atol:g})"
        ]
        for o in self.outputs:
            status = "PASS" if o.ok else "FAIL"
            note = f" ({o.note})" if o.note else ""
            lines.append(
                f"  {o.name:<24} max abs {o.max_abs:<10.3g} max rel {o.max_rel:<10.3g} "
                f"{status}{note}"
            )
        lines.append("result: " + ("PASS" if self.ok else "FAIL"))
        return "\n".join(lines)


def load_source(spec: str, *, trust_pickle: bool = False) -> Any:
    """``sklearn:FILE``, ``torch:module:factory`` or ``transformers:DIR[:task]`` -> the model."""
    kind, sep, ref = spec.partition(":")
    if not sep or not ref:
        raise InvalidArgument(
            f"source {spec!r}: expected sklearn:FILE, torch:module:factory or transformers:DIR"
        )
    if kind == "sklearn":
        from onnxpy.convert.sklearn import load_estimator

        return load_estimator(ref, trust_pickle=trust_pickle)
    if kind == "torch":
        from onnxpy.convert.torch import load_factory

        return load_factory(ref)
    if kind == "transformers":
        from onnxpy.convert.transformers import load_transformer

        directory, _, task = ref.partition(":") if not os.path.isdir(ref) else (ref, "", "")
        return load_transformer(directory, task or "feature-extraction")
    raise InvalidArgument(f"source kind {kind!r}: choose sklearn, torch or transformers")


def _runner(source: Any, input_names: Sequence[str], output_names: Sequence[str]):
    if hasattr(source, "fit") and (hasattr(source, "predict") or hasattr(source, "transform")):
        from onnxpy.convert.sklearn import sklearn_runner

        return sklearn_runner(source, output_names)
    if hasattr(source, "forward") and hasattr(source, "config"):  # a transformers model
        from onnxpy.convert.transformers import _Exportable

        source = _Exportable(source, input_names, output_names)
    if hasattr(source, "forward"):
        from onnxpy.convert.torch import torch_runner

        return torch_runner(source, input_names, output_names)
    raise InvalidArgument(f"cannot run a {type(source).__name__} as a source model")


def _as_array(value: Any, classes: Sequence | None) -> np.ndarray:
    """ZipMap's list of {class: probability} as a [batch, classes] array."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        keys = list(classes) if classes is not None else list(value[0])
        return np.array([[row[k] for k in keys] for row in value], dtype=np.float64)
    return np.asarray(value)


def _check(name: str, actual: Any, expected: Any, rtol: float, atol: float) -> OutputCheck:
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape and a.size == e.size:
        a = a.reshape(e.shape)
    if a.shape != e.shape:
        return OutputCheck(name, float("inf"), float("inf"), False, f"shape {a.shape} vs {e.shape}")
    if a.size == 0:
        return OutputCheck(name, 0.0, 0.0, True)
    if e.dtype.kind in "fc" or a.dtype.kind in "fc":
        err = np.abs(a.astype(np.float64) - e.astype(np.float64))
        err[np.isnan(a.astype(np.float64)) & np.isnan(e.astype(np.float64))] = 0.0
        scale = np.abs(e.astype(np.float64))
        rel = err / np.maximum(scale, np.finfo(np.float64).tiny)
        rel[err == 0] = 0.0
        ok = bool(np.all(err <= atol + rtol * scale))
        return OutputCheck(name, float(np.nanmax(err)), float(np.nanmax(rel)), ok)
    mismatches = int((a != e.astype(a.dtype) if a.dtype.kind != "O" else a != e).sum())
    note = f"{mismatches} of {a.size} differ" if mismatches else "exact"
    return OutputCheck(name, float(mismatches > 0), float(mismatches > 0), mismatches == 0, note)


def validate_model(
    source: Any,
    model: str | os.PathLike,
    *,
    inputs: Sequence[str] = (),
    feeds: Mapping[str, np.ndarray] | None = None,
    batch: int = 8,
    seed: int = 0,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    trust_pickle: bool = False,
) -> ValidationReport:
    """Run ``source`` (object or spec) and ``model`` in onnxpy on the same inputs; compare.

    Inputs come from ``feeds``, or ``inputs`` specs (:func:`onnxpy.tools.io.make_feeds`), the
    rest generated at ``batch`` rows with ``seed``.
    """
    import onnxpy

    label = source if isinstance(source, str) else type(source).__name__
    if isinstance(source, str):
        source = load_source(source, trust_pickle=trust_pickle)
    path = os.fspath(model)
    proto = load_model_proto(path, weights=False)
    infos = model_inputs(proto)
    if feeds is None:
        if hasattr(source, "config") and hasattr(source.config, "vocab_size") and not inputs:
            from onnxpy.convert.transformers import transformer_feeds

            feeds = transformer_feeds(source.config, [i.name for i in infos], batch=batch)
        else:
            feeds = make_feeds(infos, inputs, batch=batch, seed=seed)
    session = onnxpy.InferenceSession(path)
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(names, dict(feeds))))
    expected = _runner(source, [i.name for i in infos], names)(dict(feeds))
    rows = next((len(v) for v in feeds.values() if hasattr(v, "__len__")), batch)
    report = ValidationReport(path, label, rtol, atol, rows)
    classes = getattr(source, "classes_", None)
    for name in names:
        if name not in expected:
            report.outputs.append(
                OutputCheck(name, 0.0, 0.0, False, "the source has no such output")
            )
            continue
        actual = _as_array(got[name], classes)
        report.outputs.append(_check(name, actual, expected[name], rtol, atol))
    return report
