"""Node-by-node comparison of onnxpy against onnxruntime, onnx.reference or another model.

Both sides compute the same values in topological order, a chunk at a time (``chunk_values``
values per chunk): onnxpy returns any value by name; onnxruntime gets a copy of the model whose
graph outputs are that chunk's values (its weights written once to an external-data file beside
it, so each chunk's copy is a few kilobytes); onnx.reference and a second model are asked for the
chunk's names. Only statistics are kept between chunks, so memory stays near one chunk's values
plus each side's weights, even on BERT-base. The report gives every node's max error and names the
first node whose outputs diverge beyond tolerance, with statistics of that node's inputs.

This module (with bench and validate) may call onnxruntime and onnx.reference: they are the
oracles being compared against, never a way for onnxpy to compute.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx

from onnxpy.errors import Fail, InvalidArgument, OnnxpyError
from onnxpy.tools.graph import GraphIndex
from onnxpy.tools.io import load_model_proto, make_feeds, model_inputs
from onnxpy.tools.values import ValueStats, debug_session, node_chunks, value_stats

__all__ = ["NodeDiff", "CompareReport", "compare_models", "compare_outputs", "diff_values"]

DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-4


@dataclass
class NodeDiff:
    """One node's outputs on both sides: the largest absolute and relative error."""

    node: str
    op_type: str
    outputs: list[str]
    max_abs: float = 0.0
    max_rel: float = 0.0
    ok: bool = True
    note: str = ""


@dataclass
class CompareReport:
    """What ``compare`` found; ``first_divergence`` is None when everything agrees."""

    model: str
    against: str
    rtol: float
    atol: float
    nodes: list[NodeDiff] = field(default_factory=list)
    first_divergence: NodeDiff | None = None
    divergence_inputs: list[ValueStats] = field(default_factory=list)
    chunks: int = 0
    compared_values: int = 0

    @property
    def ok(self) -> bool:
        return self.first_divergence is None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        return d

    def format(self, limit: int = 40) -> str:
        lines = [
            f"compare {self.model} against {self.against}: {len(self.nodes)} nodes, "
            f"{self.compared_values} values in {self.chunks} chunk(s), "
            f"rtol={self.rtol:g} atol={self.atol:g}"
        ]
        width = max([len(n.node) for n in self.nodes[:limit]] + [4])
        lines.append(f"  {'node':<{width}}  {'op':<18} {'max abs':>10} {'max rel':>10}  status")
        shown = self.nodes
        if len(shown) > limit:
            # Keep the first divergence in view: the rows around it matter most.
            first = self.nodes.index(self.first_divergence) if self.first_divergence else 0
            start = max(0, min(first - limit // 2, len(shown) - limit))
            shown = shown[start : start + limit]
            lines.append(f"  ... {len(self.nodes)} nodes, rows {start + 1}-{start + len(shown)}")
        for n in shown:
            status = "ok" if n.ok else "DIVERGES"
            if n.note:
                status += f" ({n.note})"
            lines.append(
                f"  {n.node:<{width}}  {n.op_type:<18} {n.max_abs:>10.3g} {n.max_rel:>10.3g}  "
                f"{status}"
            )
        if self.first_divergence is None:
            lines.append("result: every compared value agrees within tolerance")
        else:
            d = self.first_divergence
            lines.append(
                f"first divergence: node '{d.node}' ({d.op_type}), outputs {d.outputs}, "
                f"max abs {d.max_abs:.3g}, max rel {d.max_rel:.3g}"
            )
            lines.append("  its inputs:")
            lines += [f"    {s.describe()}" for s in self.divergence_inputs]
        return "\n".join(lines)


def diff_values(actual: object, expected: object, rtol: float, atol: float) -> NodeDiff:
    """Max errors of ``actual`` vs ``expected`` and whether they agree (NaN equals NaN)."""
    out = NodeDiff("", "", [])
    if isinstance(expected, (list, dict)) or isinstance(actual, (list, dict)):
        equal = _plain(actual) == _plain(expected)
        if not equal:
            out.ok, out.note = False, "sequence/map values differ"
        return out
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        out.ok, out.note = False, f"shape {list(a.shape)} vs {list(e.shape)}"
        out.max_abs = out.max_rel = float("inf")
        return out
    if a.size == 0:
        return out
    if e.dtype.kind not in "fiubc" or a.dtype.kind not in "fiubc":
        mismatches = int((a != e).sum())
        out.ok = mismatches == 0
        out.note = f"{mismatches} element(s) differ" if mismatches else ""
        return out
    a64 = a.astype(np.complex128 if a.dtype.kind == "c" else np.float64).ravel()
    e64 = e.astype(np.complex128 if e.dtype.kind == "c" else np.float64).ravel()
    both_nan = np.isnan(a64) & np.isnan(e64)
    same_inf = np.isinf(a64) & (a64 == e64)
    err = np.abs(a64 - e64)
    err[both_nan | same_inf] = 0.0
    err[np.isnan(err)] = np.inf
    out.max_abs = float(err.max())
    scale = np.abs(e64)
    rel = err / np.where(scale > 0, scale, np.finfo(np.float64).tiny)
    rel[err == 0] = 0.0
    out.max_rel = float(rel.max())
    out.ok = bool(np.all(err <= atol + rtol * scale))
    return out


def _plain(value: object) -> object:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# -- the other side -----------------------------------------------------------------------------
class _OnnxpyValues:
    def __init__(self, model: str | onnx.ModelProto, feeds: Mapping[str, object]) -> None:
        self.session = debug_session(model)
        self.feeds = dict(feeds)

    def fetch(self, names: Sequence[str]) -> dict[str, object]:
        return dict(zip(names, self.session.run(list(names), self.feeds)))

    def close(self) -> None:
        self.session = None


class _OtherModelValues(_OnnxpyValues):
    """A second model run by onnxpy; values are matched by name (missing ones are skipped)."""

    def __init__(self, path: str, feeds: Mapping[str, object]) -> None:
        proto = load_model_proto(path, weights=False)
        index = GraphIndex.of(proto)
        self.names = set(index.producer) | set(index.graph_inputs)
        wanted = {i.name for i in model_inputs(proto)}
        super().__init__(path, {k: v for k, v in feeds.items() if k in wanted})

    def fetch(self, names: Sequence[str]) -> dict[str, object]:
        present = [n for n in names if n in self.names]
        return super().fetch(present) if present else {}


class _ReferenceValues:
    def __init__(self, proto: onnx.ModelProto, feeds: Mapping[str, object]) -> None:
        from onnx.reference import ReferenceEvaluator

        self.evaluator = ReferenceEvaluator(proto)
        self.feeds = dict(feeds)

    def fetch(self, names: Sequence[str]) -> dict[str, object]:
        return dict(zip(names, self.evaluator.run(list(names), self.feeds)))

    def close(self) -> None:
        self.evaluator = None


class _OnnxruntimeValues:
    """onnxruntime on copies of the model whose graph outputs are one chunk's values.

    The weights are written once to ``weights.bin`` in a scratch folder; each chunk's model is
    the graph alone referring to it. Optimizations are off so that every value of the file is
    computed by its own node, as written.
    """

    def __init__(self, proto: onnx.ModelProto, feeds: Mapping[str, object]) -> None:
        import onnxruntime as ort

        from onnxpy.model.skeleton import infer_types

        self.ort = ort
        self.feeds = dict(feeds)
        self.dir = tempfile.TemporaryDirectory(prefix="onnxpy-compare-")
        try:
            inferred = infer_types(proto).graph
            self.types = {v.name: v for v in list(inferred.value_info) + list(inferred.output)}
        except Exception:  # noqa: BLE001 - types are a help for onnxruntime, not a requirement
            self.types = {}
        onnx.save_model(
            proto,
            os.path.join(self.dir.name, "model.onnx"),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="weights.bin",
            size_threshold=1024,
        )
        # After saving, the tensors refer to weights.bin: the proto is small to copy.
        self.structure = proto
        self.options = ort.SessionOptions()
        self.options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.options.log_severity_level = 3

    def fetch(self, names: Sequence[str]) -> dict[str, object]:
        chunk = onnx.ModelProto()
        chunk.CopyFrom(self.structure)
        del chunk.graph.output[:]
        for name in names:
            vi = self.types.get(name)
            chunk.graph.output.append(vi if vi is not None else onnx.ValueInfoProto(name=name))
        path = os.path.join(self.dir.name, "chunk.onnx")
        onnx.save_model(chunk, path)
        sess = self.ort.InferenceSession(path, self.options, providers=["CPUExecutionProvider"])
        return dict(zip(names, sess.run(list(names), self.feeds)))

    def close(self) -> None:
        self.dir.cleanup()


def _initializer_stats(proto: onnx.ModelProto, name: str, base_dir: str | None) -> ValueStats:
    from onnx import numpy_helper

    for t in proto.graph.initializer:
        if t.name == name:
            return value_stats(name, numpy_helper.to_array(t, base_dir or ""))
    return ValueStats(name, "?", [])


# -- the comparison -----------------------------------------------------------------------------
def compare_models(
    model: str | os.PathLike,
    against: str = "onnxruntime",
    *,
    inputs: Sequence[str] = (),
    batch: int = 1,
    seed: int = 0,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    chunk_values: int = 128,
    progress=None,
) -> CompareReport:
    """Run ``model`` in onnxpy and in ``against`` ('onnxruntime', 'reference' or the path of a
    second model) with every intermediate value exposed, chunk by chunk; report per node.

    ``inputs`` are :func:`onnxpy.tools.io.make_feeds` specs (the rest is seeded random).
    ``progress(done, total)`` is called after each chunk when given.
    """
    path = os.fspath(model)
    proto = load_model_proto(path)
    index = GraphIndex.of(proto)
    feeds = make_feeds(model_inputs(proto), inputs, batch=batch, seed=seed)
    base_dir = os.path.dirname(os.path.abspath(path))
    report = CompareReport(path, against, rtol, atol)
    ours = _OnnxpyValues(path, feeds)
    if against == "onnxruntime":
        theirs = _OnnxruntimeValues(proto, feeds)
        base_dir = theirs.dir.name
    elif against == "reference":
        theirs = _ReferenceValues(proto, feeds)
    elif os.path.isfile(against):
        theirs = _OtherModelValues(against, feeds)
    else:
        raise InvalidArgument(
            f"--against {against!r}: expected onnxruntime, reference or an existing model file"
        )
    stats: dict[str, ValueStats] = {n: value_stats(n, v) for n, v in feeds.items()}
    errors: dict[str, float] = {}
    groups = node_chunks(index, chunk_values)
    try:
        for done, group in enumerate(groups, 1):
            names = [n for _, outs in group for n in outs]
            mine = ours.fetch(names)
            try:
                other = theirs.fetch(names)
            except OnnxpyError:
                raise
            except Exception as e:  # noqa: BLE001 - the other runtime's own error classes
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise Fail(f"{against} failed computing {names[0]}..{names[-1]}: {first}") from e
            report.chunks += 1
            for node, outs in group:
                diff = _compare_node(index, node, outs, mine, other, rtol, atol)
                report.nodes.append(diff)
                for n in outs:
                    stats[n] = value_stats(n, mine[n])
                if not diff.note.startswith("not in"):
                    report.compared_values += len(outs)
                    for n in outs:
                        errors[n] = diff.max_abs
                if not diff.ok and report.first_divergence is None:
                    report.first_divergence = diff
                    node_proto = index.graph.node[node]
                    report.divergence_inputs = [
                        stats.get(i) or _initializer_stats(proto, i, base_dir)
                        for i in node_proto.input
                        if i
                    ]
            del mine, other
            if progress is not None:
                progress(done, len(groups))
    finally:
        ours.close()
        theirs.close()
    return report


def _compare_node(
    index: GraphIndex,
    node: int,
    outs: list[str],
    mine: Mapping[str, object],
    other: Mapping[str, object],
    rtol: float,
    atol: float,
) -> NodeDiff:
    label, op = index.label(node), index.graph.node[node].op_type
    result = NodeDiff(label, op, list(outs))
    present = [n for n in outs if n in other]
    if not present:
        result.note = "not in the other model"
        return result
    notes = []
    for name in present:
        d = diff_values(mine[name], other[name], rtol, atol)
        result.max_abs = max(result.max_abs, d.max_abs)
        result.max_rel = max(result.max_rel, d.max_rel)
        result.ok = result.ok and d.ok
        if d.note:
            notes.append(f"{name}: {d.note}")
    result.note = "; ".join(notes)
    return result


def compare_outputs(
    model: str | os.PathLike,
    expected: str | os.PathLike,
    *,
    inputs: Sequence[str] = (),
    batch: int = 1,
    seed: int = 0,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> CompareReport:
    """Check onnxpy's outputs of ``model`` against golden outputs saved earlier (``.npz`` from
    ``onnxpy run --save-outputs``; feed the same inputs, e.g. its ``--save-inputs`` file)."""
    import onnxpy
    from onnxpy.tools.io import load_arrays

    path = os.fspath(model)
    golden = load_arrays(expected)
    proto = load_model_proto(path, weights=False)
    feeds = make_feeds(model_inputs(proto), inputs, batch=batch, seed=seed)
    graph_outputs = [o.name for o in proto.graph.output]
    known = set(GraphIndex.of(proto).producer)
    missing = [n for n in golden if n not in known]
    if missing:
        raise InvalidArgument(f"{expected}: {missing} are not values of the model")
    names = list(golden)
    if set(names) <= set(graph_outputs):
        session = onnxpy.InferenceSession(path)
    else:  # golden intermediates (run --outputs ... --save-outputs)
        session = debug_session(path)
    values = dict(zip(names, session.run(names, feeds)))
    report = CompareReport(path, os.fspath(expected), rtol, atol)
    for name in names:
        d = diff_values(values[name], golden[name], rtol, atol)
        d.node, d.op_type, d.outputs = name, "(golden)", [name]
        report.nodes.append(d)
        report.compared_values += 1
        if not d.ok and report.first_divergence is None:
            report.first_divergence = d
    report.chunks = 1
    return report
