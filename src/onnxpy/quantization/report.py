"""What quantization cost, and where: ``report(float_model, quant_model, data)``.

Both models run on the same feeds in onnxpy sessions with ``ORT_DISABLE_ALL`` (which serve any
value by name). For every float node whose output the quantized model also exposes - the
``T_DequantizeLinear_Output`` of a QDQ model, ``T`` itself (dynamic), or ``T_quantized``
dequantized with its ``T_scale``/``T_zero_point`` (QOperator) - the report gives the SQNR of
that output against the float model's (signal power over error power, in dB), the largest
absolute error, and the error the node itself *adds*: its output's relative error power minus
the worst of its inputs', in dB (so a node that only passes on its inputs' error adds nothing).
Then the model's end metric (top-1 agreement for class scores or labels, cosine similarity of
the outputs otherwise) and the file sizes. ``meet_target`` uses the ranking to leave the worst
nodes in float until a target agreement is met.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from onnx import ModelProto, numpy_helper

from onnxpy.errors import InvalidArgument
from onnxpy.quantization.model_io import ensure_names, load

__all__ = ["NodeError", "QuantizationReport", "report", "meet_target", "model_size"]

_QUANT_OPS = ("QLinear", "QGemm", "MatMulInteger", "ConvInteger", "DynamicQuantize", "MatMulNBits")


@dataclass
class NodeError:
    node: str
    op_type: str
    output: str
    sqnr_db: float
    max_abs: float
    added_db: float
    quantized: bool


@dataclass
class QuantizationReport:
    nodes: list[NodeError]
    metric: str
    value: float
    cosine: float
    size_before: int
    size_after: int
    samples: int
    excluded: list[str] = field(default_factory=list)

    def worst(self, n: int = 10) -> list[NodeError]:
        """The quantized nodes adding the most error (lowest added SQNR) first."""
        return sorted((e for e in self.nodes if e.quantized), key=lambda e: e.added_db)[:n]

    def to_json(self) -> str:
        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        data = asdict(self)
        data["nodes"] = [{k: clean(v) for k, v in e.items()} for e in data["nodes"]]
        return json.dumps(
            {k: clean(v) if not isinstance(v, list) else v for k, v in data.items()}, indent=2
        )

    def table(self, limit: int | None = 25) -> str:
        rows = [e for e in self.nodes if e.quantized]
        rows.sort(key=lambda e: e.added_db)
        shown = rows if limit is None else rows[:limit]
        lines = [f"{'node':<40} {'op':<18} {'SQNR dB':>8} {'added dB':>9} {'max |err|':>10}"]
        for e in shown:
            name, op = e.node[:40], e.op_type[:18]
            lines.append(
                f"{name:<40} {op:<18} {_db(e.sqnr_db):>8} {_db(e.added_db):>9} {e.max_abs:>10.3g}"
            )
        if len(rows) > len(shown):
            lines.append(f"... {len(rows) - len(shown)} more quantized nodes (see the JSON)")
        ratio = self.size_before / self.size_after if self.size_after else float("nan")
        lines.append(
            f"{self.metric}: {self.value:.4f}   cosine: {self.cosine:.5f}   samples: {self.samples}"
        )
        lines.append(
            f"size: {self.size_before:,} -> {self.size_after:,} bytes ({ratio:.2f}x smaller)"
        )
        if self.excluded:
            lines.append(f"left in float: {', '.join(self.excluded)}")
        return "\n".join(lines)


def _db(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.1f}"


def model_size(model: str | os.PathLike | ModelProto) -> int:
    """Bytes on disk (the file plus its external data) or of the serialized proto."""
    if isinstance(model, ModelProto):
        return model.ByteSize()
    path = Path(model)
    total = path.stat().st_size
    for data in path.parent.glob(path.name + ".data"):
        total += data.stat().st_size
    return total


def _feeds(data) -> list[dict]:
    if isinstance(data, dict):
        return [data]
    if hasattr(data, "get_next"):
        out = []
        while (feed := data.get_next()) is not None:
            out.append(feed)
        return out
    feeds = list(data)
    if not feeds or not all(isinstance(f, dict) for f in feeds):
        raise InvalidArgument("data must be a feed dict, a list of them or a CalibrationDataReader")
    return feeds


def _session(model: ModelProto, source):
    """An unoptimized session (it serves any value by name), from the file when there is one
    (a model over 2 GB cannot be serialized)."""
    import onnxpy

    so = onnxpy.SessionOptions()
    so.graph_optimization_level = onnxpy.GraphOptimizationLevel.ORT_DISABLE_ALL
    if isinstance(source, (str, os.PathLike)):
        return onnxpy.InferenceSession(str(source), sess_options=so)
    return onnxpy.InferenceSession(model.SerializeToString(), sess_options=so)


def _observers(float_model: ModelProto, quant: ModelProto) -> dict[str, tuple[str, Callable]]:
    """float value -> (quantized model's value, function turning it into the float value)."""
    inits = {t.name: t for t in quant.graph.initializer}
    values = {o for n in quant.graph.node for o in n.output} | {i.name for i in quant.graph.input}
    out = {}
    for node in float_model.graph.node:
        for t in node.output:
            dq = f"{t}_DequantizeLinear_Output"
            if dq in values:
                out[t] = (dq, _identity)
            elif (
                f"{t}_quantized" in values and f"{t}_scale" in inits and f"{t}_zero_point" in inits
            ):
                s = numpy_helper.to_array(inits[f"{t}_scale"]).astype(np.float32)
                z = numpy_helper.to_array(inits[f"{t}_zero_point"]).astype(np.float32)
                out[t] = (f"{t}_quantized", lambda q, s=s, z=z: (q.astype(np.float32) - z) * s)
            elif t in values:
                out[t] = (t, _identity)
    return out


def _identity(v):
    return v


def _quantized_nodes(float_model: ModelProto, quant: ModelProto) -> set[str]:
    by_name = {n.name: n for n in quant.graph.node}
    dq_outputs = {o for n in quant.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantized = set()
    for node in float_model.graph.node:
        same = by_name.get(node.name)
        if same is not None and same.op_type == node.op_type:
            if any(x in dq_outputs for x in same.input):
                quantized.add(node.name)
            continue
        prefix = node.name + "_"
        if any(n.startswith(prefix) and by_name[n].op_type.startswith(_QUANT_OPS) for n in by_name):
            quantized.add(node.name)
    return quantized


def _folded_relus(float_model: ModelProto, quant: ModelProto) -> dict[str, str]:
    """{producer name: Relu name} for Relus the quantizer folded into their producer."""
    names = {n.name for n in quant.graph.node}
    producer = {o: n for n in float_model.graph.node for o in n.output}
    folded = {}
    for n in float_model.graph.node:
        if n.op_type == "Relu" and n.name not in names and n.input[0] in producer:
            p = producer[n.input[0]]
            if p.name in names:
                folded[p.name] = n.name
    return folded


class _Acc:
    def __init__(self) -> None:
        self.signal = self.noise = self.max_abs = 0.0

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        ref = np.asarray(ref, dtype=np.float64)
        err = np.asarray(got, dtype=np.float64).reshape(ref.shape) - ref
        self.signal += float(np.sum(ref * ref))
        self.noise += float(np.sum(err * err))
        self.max_abs = max(self.max_abs, float(np.max(np.abs(err), initial=0.0)))

    @property
    def relative(self) -> float:
        return (
            self.noise / self.signal if self.signal > 0 else (0.0 if self.noise == 0 else math.inf)
        )


def _rel_db(rel: float) -> float:
    return math.inf if rel <= 0 else -10.0 * math.log10(rel)


def _metrics(ref: list, got: list) -> tuple[str, float, float]:
    """(metric name, its value, mean cosine similarity) over the first output of each run."""
    r = [np.asarray(x) for x in ref]
    g = [np.asarray(x) for x in got]
    if r[0].dtype.kind in "iub":
        agree = np.mean(np.concatenate([(a == b).ravel() for a, b in zip(r, g)]))
        return "label agreement", float(agree), float("nan")
    flat_r = np.concatenate([a.reshape(a.shape[0] if a.ndim else 1, -1) for a in r]).astype(
        np.float64
    )
    flat_g = np.concatenate([b.reshape(b.shape[0] if b.ndim else 1, -1) for b in g]).astype(
        np.float64
    )
    norms = np.linalg.norm(flat_r, axis=1) * np.linalg.norm(flat_g, axis=1)
    cos = float(np.mean(np.sum(flat_r * flat_g, axis=1) / np.where(norms == 0, 1, norms)))
    if r[0].ndim == 2 and r[0].shape[1] > 1:
        top1 = np.mean(np.argmax(flat_r, axis=1) == np.argmax(flat_g, axis=1))
        return "top-1 agreement", float(top1), cos
    return "cosine similarity", cos, cos


def report(
    float_model: str | os.PathLike | ModelProto,
    quant_model: str | os.PathLike | ModelProto,
    data,
) -> QuantizationReport:
    """Per-node error and end metric of ``quant_model`` against ``float_model`` on ``data``
    (a feed dict, a list of them, or a CalibrationDataReader)."""
    fm, qm = load(float_model), load(quant_model)
    ensure_names(fm)
    feeds = _feeds(data)
    if not feeds:
        raise InvalidArgument("the report needs at least one feed")
    observe = _observers(fm, qm)
    quantized = _quantized_nodes(fm, qm)
    fs, qs = _session(fm, float_model), _session(qm, quant_model)
    f_names = list(observe)
    q_names = [observe[t][0] for t in f_names]
    outputs = [o.name for o in fs.get_outputs()]
    accs = {t: _Acc() for t in f_names}
    ref_out, got_out = [], []
    for feed in feeds:
        fv = dict(zip(f_names + outputs, fs.run(f_names + outputs, feed)))
        qv = dict(zip(q_names + outputs, qs.run(q_names + outputs, feed)))
        for t, qn in zip(f_names, q_names):
            ref = fv[t]
            if isinstance(ref, np.ndarray) and ref.dtype.kind == "f":
                accs[t].add(ref, observe[t][1](qv[qn]))
        ref_out.append(fv[outputs[0]])
        got_out.append(qv[outputs[0]])
    rel = {t: a.relative for t, a in accs.items() if a.signal or a.noise}
    folded = _folded_relus(fm, qm)
    nodes = []
    for node in fm.graph.node:
        outs = [t for t in node.output if t in rel]
        if node.name in folded.values():
            continue  # reported with the node it was folded into
        if node.name in folded and not outs:
            relu = next(n for n in fm.graph.node if n.name == folded[node.name])
            outs = [relu.output[0]] if relu.output[0] in rel else []
        if not outs:
            continue
        t = outs[0]
        worst_in = max((rel.get(x, 0.0) for x in node.input), default=0.0)
        added = max(rel[t] - worst_in, 0.0)
        nodes.append(
            NodeError(
                node.name,
                node.op_type,
                t,
                _rel_db(rel[t]),
                accs[t].max_abs,
                _rel_db(added),
                node.name in quantized,
            )
        )
    metric, value, cos = _metrics(ref_out, got_out)
    return QuantizationReport(
        nodes, metric, value, cos, model_size(float_model), model_size(quant_model), len(feeds)
    )


def meet_target(
    float_model: str | os.PathLike | ModelProto,
    build: Callable[[set[str]], ModelProto],
    data,
    target: float,
    max_excluded: int = 50,
) -> tuple[ModelProto, QuantizationReport]:
    """Quantize with ``build(nodes_to_exclude)``, then leave the quantized node adding the most
    error in float, one at a time, until the end metric reaches ``target``."""
    feeds = _feeds(data)
    excluded: list[str] = []
    while True:
        model = build(set(excluded))
        r = report(float_model, model, feeds)
        r.excluded = list(excluded)
        candidates = [e for e in r.worst(len(r.nodes)) if e.node not in excluded]
        if r.value >= target or not candidates or len(excluded) >= max_excluded:
            return model, r
        excluded.append(candidates[0].node)
