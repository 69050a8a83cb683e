"""Type-sweep variants of the backend node cases: every element type an operator's schema allows.

Each single-node backend case (default domain, not ``_expanded``) gives a valid model, inputs and
attributes. For each type constraint its fed inputs use and each other NumPy-native element type
that constraint allows, a *variant* is made: the graph inputs/outputs bound to the constraint are
retyped, the input data converted to values the type holds, and the variant is kept only if the
onnx checker and strict shape inference accept it.

A variant is run through onnxpy (dtype and shape checked) and its values compared with
onnxruntime's where onnxruntime has a kernel and passes the original case; otherwise with
onnxpy's own float64 variant (float targets), otherwise only dtype and shape are checked.
Not swept: Loop, Scan and SequenceMap, whose element types are fixed by their body graphs.

``python -m tests.conformance.type_sweep`` prints the sweep's statistics.
"""

from __future__ import annotations

import functools
import re
import sys
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto

from tests.conformance.backend import Case, assert_similar, collect, load_case

# Element types swept: schema name -> (TensorProto enum, numpy dtype).
SWEPT: dict[str, tuple[int, np.dtype]] = {
    "float16": (TensorProto.FLOAT16, np.dtype(np.float16)),
    "float": (TensorProto.FLOAT, np.dtype(np.float32)),
    "double": (TensorProto.DOUBLE, np.dtype(np.float64)),
    "bfloat16": (TensorProto.BFLOAT16, np.dtype(ml_dtypes.bfloat16)),
    "int8": (TensorProto.INT8, np.dtype(np.int8)),
    "int16": (TensorProto.INT16, np.dtype(np.int16)),
    "int32": (TensorProto.INT32, np.dtype(np.int32)),
    "int64": (TensorProto.INT64, np.dtype(np.int64)),
    "uint8": (TensorProto.UINT8, np.dtype(np.uint8)),
    "uint16": (TensorProto.UINT16, np.dtype(np.uint16)),
    "uint32": (TensorProto.UINT32, np.dtype(np.uint32)),
    "uint64": (TensorProto.UINT64, np.dtype(np.uint64)),
    "bool": (TensorProto.BOOL, np.dtype(np.bool_)),
}
_NAME_OF_ENUM = {enum: name for name, (enum, _) in SWEPT.items()}
_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
# Targets whose values may be checked against onnxpy's own float64 variant.
_NARROW_FLOATS = ("float16", "float", "bfloat16")

# Ops whose outputs are drawn at random: only dtype and shape can be checked.
RANDOM_OPS = frozenset({"Bernoulli", "RandomUniformLike", "RandomNormalLike", "Multinomial"})
RANDOM_CASE_PREFIXES = ("test_training_dropout",)
# Ops whose output shape depends on input values: a lossy conversion may change it.
VALUE_SHAPED_OPS = frozenset({"NonZero", "Unique", "Range"})
# Ops not swept: their body graph fixes the element types (retyping it is another project).
BODY_TYPED_OPS = frozenset({"Loop", "Scan", "SequenceMap"})


@dataclass
class Variant:
    """One (case, constraint, target element type) model with its converted data sets."""

    case: str
    op: str
    constraint: str
    source: str
    target: str
    model: bytes
    data_sets: list[dict[str, Any]]
    shapes: list[list[Any]]  # the original case's output shapes, per data set
    out_types: list[str | None]  # schema names of the variant's output element types
    out_dtypes: list[np.dtype | None]
    lossless: bool  # the converted inputs hold the original values exactly
    random: bool
    params: frozenset[str]  # the constraints retyped (more than one when they move together)
    names: frozenset[str]  # the graph inputs retyped
    info: _CaseInfo = field(repr=False)  # to build the same case in another type

    @property
    def id(self) -> str:
        return f"{self.case}[{self.constraint}:{self.source}->{self.target}]"


# -- type strings ----------------------------------------------------------------------------
def type_string(tp: onnx.TypeProto) -> str | None:
    """The schema spelling of a TypeProto: tensor(float), seq(tensor(int64)), optional(...)."""
    which = tp.WhichOneof("value")
    if which == "tensor_type":
        name = _NAME_OF_ENUM.get(tp.tensor_type.elem_type)
        if name is None:
            name = onnx.helper.tensor_dtype_to_string(tp.tensor_type.elem_type)
            name = name.replace("TensorProto.", "").lower()
        return f"tensor({name})"
    if which in ("sequence_type", "optional_type"):
        inner = type_string(getattr(tp, which).elem_type)
        wrapper = "seq" if which == "sequence_type" else "optional"
        return None if inner is None else f"{wrapper}({inner})"
    return None


_ELEM = re.compile(r"tensor\(([a-z0-9]+)\)")


def split_type(s: str) -> tuple[str, str]:
    """'seq(tensor(float))' -> ('seq(tensor({}))', 'float')."""
    m = _ELEM.search(s)
    if m is None:
        return s, ""
    return s[: m.start(1)] + "{}" + s[m.end(1) :], m.group(1)


def _tensor_type(tp: onnx.TypeProto) -> Any | None:
    """The innermost tensor type of a (sequence / optional of) tensor type."""
    which = tp.WhichOneof("value")
    if which == "tensor_type":
        return tp.tensor_type
    if which in ("sequence_type", "optional_type"):
        return _tensor_type(getattr(tp, which).elem_type)
    return None


def _elem(tp: onnx.TypeProto) -> int | None:
    t = _tensor_type(tp)
    return None if t is None else t.elem_type


def _np_dtype(elem: int | None) -> np.dtype | None:
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem)) if elem else None


# -- data conversion --------------------------------------------------------------------------
def convert(value: Any, target: str) -> Any:
    """``value`` as element type ``target``, its values kept inside the type's range."""
    if value is None:
        return None
    if isinstance(value, list):
        return [convert(v, target) for v in value]
    # NumPy hands 0-d results back as scalars; feeds must stay arrays.
    return np.asarray(_convert_array(np.asarray(value), target))


def _convert_array(x: np.ndarray, target: str) -> Any:
    dt = SWEPT[target][1]
    if target == "bool":
        return x != 0
    if x.dtype == np.bool_:
        return x.astype(dt)
    if x.dtype.kind in "iu" and dt.kind in "iu":
        info, src = np.iinfo(dt), np.iinfo(x.dtype)
        if dt.kind == "u" and x.dtype.kind == "i":
            x = np.abs(x)
        return np.clip(x, max(info.min, src.min), min(info.max, src.max)).astype(dt)
    x64 = x.astype(np.float64)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        x64 = np.rint(np.nan_to_num(x64, nan=0.0, posinf=info.max, neginf=info.min))
        if dt.kind == "u":
            x64 = np.abs(x64)
        # The largest float64 below 2**63 for 64-bit types (2**63 itself would overflow).
        hi = float(info.max) if info.bits < 64 else float(2**63 - 1024)
        return np.clip(x64, float(info.min), hi).astype(dt)
    big = float(ml_dtypes.finfo(dt).max)
    return np.where(np.isfinite(x64), np.clip(x64, -big, big), x64).astype(dt)


def _fix_for_op(op: str, feeds: dict[str, Any], names: list[str], target: str) -> None:
    """Keep integer variants where the spec defines them (edits ``feeds`` in place)."""
    if SWEPT[target][1].kind not in "iu" or len(names) < 2 or names[1] not in feeds:
        return
    b = feeds[names[1]]
    if op in ("Div", "Mod"):  # integer division by zero is undefined
        feeds[names[1]] = np.where(b == 0, np.ones_like(b), b)
    elif op == "Pow":  # an integer to a negative integer power is not an integer
        feeds[names[1]] = np.abs(b)


def _same_values(a: Any, b: Any) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list)
            and isinstance(b, list)
            and len(a) == len(b)
            and all(_same_values(x, y) for x, y in zip(a, b))
        )
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    return bool(np.array_equal(a.astype(np.float64), b.astype(np.float64), equal_nan=True))


def _shapes(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, list):
            out.append([np.shape(x) for x in v])
        else:
            out.append(None if v is None else np.shape(v))
    return out


# -- schema binding ---------------------------------------------------------------------------
def _formal(params: list[Any], i: int) -> Any | None:
    if i < len(params):
        return params[i]
    if params and params[-1].option == onnx.defs.OpSchema.FormalParameterOption.Variadic:
        return params[-1]
    return None


def _bindings(model: onnx.ModelProto, schema: Any) -> tuple[dict[str, str], dict[str, str]]:
    """graph input name -> type param, graph output name -> type param (constraint-bound only)."""
    node = model.graph.node[0]
    params = {tc.type_param_str for tc in schema.type_constraints}
    inputs: dict[str, str] = {}
    for i, name in enumerate(node.input):
        p = _formal(list(schema.inputs), i)
        if name and p is not None and p.type_str in params:
            if inputs.setdefault(name, p.type_str) != p.type_str:
                inputs[name] = ""  # one value bound to two constraints: not swept
    outputs: dict[str, str] = {}
    for i, name in enumerate(node.output):
        p = _formal(list(schema.outputs), i)
        if name and p is not None and p.type_str in params:
            outputs[name] = p.type_str
    return inputs, outputs


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


@functools.cache
def _node_cases() -> dict[str, Case]:
    return {case.name: case for case in collect(("node",))}


def single_node_cases() -> list[Case]:
    """Backend node cases that are one default-domain node (no ``_expanded`` function bodies)."""
    out = []
    for case in _node_cases().values():
        if "_expanded" in case.name:
            continue
        g = onnx.load(str(case.model_path), load_external_data=False).graph
        if len(g.node) == 1 and g.node[0].domain in ("", "ai.onnx") and not g.initializer:
            out.append(case)
    return out


def _targets(schema: Any, param: str, current: list[str]) -> list[str]:
    """Swept element types, other than the current one, ``param`` allows for every fed value."""
    tc = next(tc for tc in schema.type_constraints if tc.type_param_str == param)
    allowed = set(tc.allowed_type_strs)
    wrappers = {split_type(c)[0] for c in current}
    elems = {split_type(c)[1] for c in current}
    if len(elems) != 1 or not elems <= set(SWEPT):
        return []
    return [
        name
        for name in SWEPT
        if name not in elems and all(w.format(name) in allowed for w in wrappers)
    ]


# -- building a variant -----------------------------------------------------------------------
def _passes_strict_inference(model: onnx.ModelProto) -> bool:
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except onnx.shape_inference.InferenceError:
        return False
    return True


def _retype(
    model: onnx.ModelProto,
    bindings: tuple[dict[str, str], dict[str, str]],
    params: set[str],
    target: str,
    strict: bool,
) -> onnx.ModelProto | None:
    """The model with values bound to ``params`` retyped to ``target``; None if invalid.

    ``strict``: validate with strict shape inference (off when the original model itself fails
    it: MeanVarianceNormalization's function body trips onnx's own inference).
    """
    in_bind, out_bind = bindings
    enum = SWEPT[target][0]
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.input:
        if in_bind.get(vi.name) in params:
            _tensor_type(vi.type).elem_type = enum
    # Outputs bound to another constraint may follow the inputs (EyeLike without dtype): their
    # element type is what inference says, the original one where it says nothing.
    others = {}
    for vi in m.graph.output:
        if out_bind.get(vi.name) in params:
            _tensor_type(vi.type).elem_type = enum
        elif vi.name in out_bind:
            others[vi.name] = onnx.TypeProto()
            others[vi.name].CopyFrom(vi.type)
            vi.ClearField("type")
    try:
        if others:
            inferred = onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=strict)
            got = {vi.name: _elem(vi.type) for vi in inferred.graph.output}
            for vi in m.graph.output:
                if vi.name in others:
                    vi.type.CopyFrom(others[vi.name])
                    if got.get(vi.name):
                        _tensor_type(vi.type).elem_type = got[vi.name]
        onnx.checker.check_model(m)
        return onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=strict)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError):
        return None


def _convert_sets(
    data: list[tuple[dict[str, Any], list[Any]]],
    names: set[str],
    target: str,
    node: onnx.NodeProto,
) -> tuple[list[dict[str, Any]], bool]:
    sets, lossless = [], True
    for feeds, _ in data:
        new = {n: convert(v, target) if n in names else v for n, v in feeds.items()}
        _fix_for_op(node.op_type, new, list(node.input), target)
        lossless = lossless and all(_same_values(new[n], feeds[n]) for n in names if n in feeds)
        sets.append(new)
    return sets, lossless


@dataclass
class _CaseInfo:
    """What every variant of one case shares."""

    case: Case
    model: onnx.ModelProto
    node: onnx.NodeProto
    schema: Any
    bindings: tuple[dict[str, str], dict[str, str]]
    by_param: dict[str, list[str]]  # type param -> fed input names
    current: dict[str, list[str]]  # type param -> their type strings
    data: list[tuple[dict[str, Any], list[Any]]]
    strict: bool

    def targets(self, param: str) -> list[str]:
        return _targets(self.schema, param, self.current[param])

    def source(self, param: str) -> str:
        return split_type(self.current[param][0])[1]


def _case_info(case: Case) -> _CaseInfo | None:
    model = onnx.load(str(case.model_path), load_external_data=False)
    node = model.graph.node[0]
    if node.op_type in BODY_TYPED_OPS:
        return None
    try:
        schema = onnx.defs.get_schema(node.op_type, _opset(model), "")
    except onnx.defs.SchemaError:
        return None
    in_bind, out_bind = _bindings(model, schema)
    fed = {vi.name: vi for vi in model.graph.input}
    by_param: dict[str, list[str]] = {}
    for name, param in in_bind.items():
        if param and name in fed:
            by_param.setdefault(param, []).append(name)
    current = {p: [type_string(fed[n].type) or "" for n in ns] for p, ns in by_param.items()}
    strict = _passes_strict_inference(model)
    return _CaseInfo(
        case, model, node, schema, (in_bind, out_bind), by_param, current, load_case(case), strict
    )


def _build(info: _CaseInfo, param: str, target: str) -> tuple[onnx.ModelProto, set[str]] | None:
    """The retyped model and the constraints it moved; None if no valid variant exists."""
    params = {param}
    variant = _retype(info.model, info.bindings, params, target, info.strict)
    if variant is not None:
        return variant, params
    # Constraints that must move together (SequenceInsert's S and T, ...).
    source = info.source(param)
    params |= {
        p
        for p in info.by_param
        if p != param and info.source(p) == source and target in info.targets(p)
    }
    if len(params) == 1:
        return None
    variant = _retype(info.model, info.bindings, params, target, info.strict)
    return None if variant is None else (variant, params)


def _variant(info: _CaseInfo, param: str, target: str, built: Any) -> Variant:
    model, params = built
    names = frozenset(n for n, p in info.bindings[0].items() if p in params)
    sets, lossless = _convert_sets(info.data, names, target, info.node)
    elems = [_elem(vi.type) for vi in model.graph.output]
    name = info.case.name
    return Variant(
        case=name,
        op=info.node.op_type,
        constraint=param,
        source=info.source(param),
        target=target,
        model=model.SerializeToString(),
        data_sets=sets,
        shapes=[_shapes(expected) for _, expected in info.data],
        out_types=[_NAME_OF_ENUM.get(e) if e else None for e in elems],
        out_dtypes=[_np_dtype(e) for e in elems],
        lossless=lossless,
        random=info.node.op_type in RANDOM_OPS or name.startswith(RANDOM_CASE_PREFIXES),
        params=frozenset(params),
        names=names,
        info=info,
    )


def sibling(v: Variant, other: str) -> tuple[bytes, list[dict[str, Any]]] | None:
    """The same case with ``v``'s constraints in element type ``other``, on ``v``'s data."""
    info = v.info
    model = _retype(info.model, info.bindings, set(v.params), other, info.strict)
    if model is None:
        return None
    sets = [
        {n: convert(x, other) if n in v.names else x for n, x in feeds.items()}
        for feeds in v.data_sets
    ]
    return model.SerializeToString(), sets


def case_variants(case: Case, refused: list[str] | None = None) -> Iterator[Variant]:
    """Every valid type variant of one single-node case (``refused`` collects the invalid)."""
    info = _case_info(case)
    if info is None:
        return
    seen: set[tuple[frozenset[str], str]] = set()
    for param in sorted(info.by_param):
        for target in info.targets(param):
            built = _build(info, param, target)
            if built is None:
                if refused is not None:
                    refused.append(f"{case.name}[{param}:{info.source(param)}->{target}]")
                continue
            key = (frozenset(built[1]), target)
            if key not in seen:
                seen.add(key)
                yield _variant(info, param, target, built)


def all_variants(refused: list[str] | None = None) -> list[Variant]:
    """The variants of every single-node case."""
    return [v for case in single_node_cases() for v in case_variants(case, refused)]


# -- checking a variant -----------------------------------------------------------------------
# Tolerance per element type, relative to the magnitude of the reference output; None: exact.
TOLERANCE = {"float16": 1e-3, "bfloat16": 1e-2, "float": 1e-5, "double": 1e-5}


@dataclass(frozen=True)
class Deviation:
    """Where onnxruntime's values are no oracle for a variant (spec silent, or ORT off-spec)."""

    reason: str
    outputs: tuple[int, ...] | None = None  # outputs whose ORT values are ignored (None: all)
    atol: int = 0  # integer outputs: the difference allowed instead (another rounding)


ORT_DEVIATIONS: dict[tuple[str, str, str], Deviation] = {
    **{
        ("Attention", "U", t): Deviation(
            "the spec defines boolean and float (additive) masks only; onnxpy adds an integer "
            "mask like a float one, onnxruntime's handling differs with the integer width"
        )
        for t in _INTS
    },
    ("Attention", "U", "bool"): Deviation(
        "onnxruntime writes the lowest float, not -inf as the spec says, at masked positions of "
        "qk_matmul_output (output 3)",
        outputs=(3,),
    ),
    **{
        ("Resize", "T1", t): Deviation(
            "the spec does not say how interpolated integers round: onnxpy rounds to nearest, "
            "onnxruntime truncates",
            atol=1,
        )
        for t in _INTS
    },
}


@dataclass
class Outcome:
    """How a variant was checked ('ort', 'f64', 'dtype', 'random') and ORT's status."""

    check: str
    ort: str  # 'ok', 'not_implemented', 'untrusted...', 'deviation...', 'refused...', 'failed...'


def _check_types(v: Variant, k: int, outs: list[Any]) -> None:
    assert len(outs) == len(v.out_dtypes), f"{len(outs)} outputs, expected {len(v.out_dtypes)}"
    for i, (out, want) in enumerate(zip(outs, v.out_dtypes)):
        if want is None or out is None:
            continue
        for x in out if isinstance(out, list) else [out]:
            assert isinstance(x, np.ndarray), f"output {i}: {type(x).__name__}, not an array"
            assert x.dtype == want, f"output {i}: dtype {x.dtype}, expected {want}"
        if v.op in VALUE_SHAPED_OPS and not v.lossless:
            continue
        got = _shapes([out])[0]
        assert got == v.shapes[k][i], f"output {i}: shape {got}, expected {v.shapes[k][i]}"


def _is_ml(dt: np.dtype) -> bool:
    """An ml_dtypes type (bfloat16, float8, int4): NumPy's own comparisons do not know it."""
    return dt.kind == "V" or dt.type.__module__.startswith("ml_dtypes")


def assert_close(ref: Any, out: Any, tol: float | None, what: str) -> None:
    """Exact when ``tol`` is None; else |out-ref| <= tol*(|ref| + max|ref|), NaN where NaN."""
    if isinstance(ref, list):
        assert isinstance(out, list) and len(out) == len(ref), f"{what}: sequence mismatch"
        for j, (r, o) in enumerate(zip(ref, out)):
            assert_close(r, o, tol, f"{what}[{j}]")
        return
    if ref is None:
        assert out is None, f"{what}: expected an empty optional"
        return
    ref, out = np.asarray(ref), np.asarray(out)
    if _is_ml(out.dtype) and out.dtype.itemsize == 1 and ref.dtype in (np.uint8, np.int8):
        ref = ref.view(out.dtype)  # onnxruntime hands float8 values back as their bytes
    if _is_ml(out.dtype) or _is_ml(ref.dtype):
        ref, out = ref.astype(np.float64), out.astype(np.float64)
    assert ref.shape == out.shape, f"{what}: shape {out.shape}, expected {ref.shape}"
    if tol is None or ref.dtype == object:
        np.testing.assert_array_equal(out, ref, err_msg=what)
        return
    r = ref.astype(np.float64)
    finite = np.isfinite(r)
    scale = float(np.max(np.abs(r[finite]))) if finite.any() else 0.0
    np.testing.assert_allclose(out.astype(np.float64), r, rtol=tol, atol=tol * scale, err_msg=what)


def _run_onnxpy(model: bytes, data_sets: list[dict[str, Any]]) -> list[list[Any]]:
    import onnxpy

    sess = onnxpy.InferenceSession(model)
    names = [o.name for o in sess.get_outputs()]
    return [sess.run(names, feeds) for feeds in data_sets]


def _run_ort(model: bytes, data_sets: list[dict[str, Any]]) -> tuple[list[list[Any]] | None, str]:
    """onnxruntime's outputs, or None and why: 'not_implemented', 'refused: ...', 'failed: ...'."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - the oracle's refusal is classified, not raised
        if type(e).__name__ == "NotImplemented" or "NOT_IMPLEMENTED" in str(e):
            return None, "not_implemented"
        return None, f"refused: {type(e).__name__}: {str(e)[:200]}"
    names = [o.name for o in sess.get_outputs()]
    try:
        return [sess.run(names, feeds) for feeds in data_sets], "ok"
    except Exception as e:  # noqa: BLE001
        if "not supported" in str(e) or "does not support" in str(e):
            return None, "not_implemented"  # a kernel that refuses the type when run
        return None, f"failed: {type(e).__name__}: {str(e)[:200]}"


@functools.cache
def ort_trusted(case_name: str) -> bool:
    """Whether onnxruntime passes the original case (else its values are no oracle for it)."""
    case = _node_cases()[case_name]
    data = load_case(case)
    refs, _ = _run_ort(case.model_path.read_bytes(), [feeds for feeds, _ in data])
    if refs is None:
        return True  # nothing to judge by: the variant's own run decides
    try:
        for (_, expected), got in zip(data, refs):
            assert_similar(expected, got, case.rtol, case.atol)
    except AssertionError:
        return False
    return True


def _oracle(v: Variant) -> tuple[list[list[Any]] | None, str, Deviation | None]:
    """onnxruntime's outputs for ``v`` when they can serve as expectations, and why not."""
    refs, status = _run_ort(v.model, v.data_sets)
    if refs is None:
        return None, status, None
    if not ort_trusted(v.case):
        return None, "untrusted: onnxruntime fails the original case", None
    dev = ORT_DEVIATIONS.get((v.op, v.constraint, v.target))
    if dev is not None and dev.outputs is None and not dev.atol:
        return None, f"deviation: {dev.reason}", dev
    return refs, status, dev


def _as_dtype(value: Any, dtype: np.dtype) -> Any:
    if isinstance(value, list):
        return [_as_dtype(x, dtype) for x in value]
    return None if value is None else np.asarray(value).astype(dtype)


def _in_target_types(v: Variant, refs: list[list[Any]]) -> list[list[Any]]:
    return [
        [r if dt is None else _as_dtype(r, dt) for r, dt in zip(outs, v.out_dtypes)]
        for outs in refs
    ]


# Where onnxruntime has no kernel for a target type, its kernel for a type holding the same
# values exactly computes the expectation (cast back to the target type).
ORT_STAND_INS: dict[str, tuple[str, ...]] = {
    "double": ("float",),
    "float16": ("float",),
    "bfloat16": ("float",),
    "int8": ("int32", "int64"),
    "int16": ("int32", "int64"),
    "int32": ("int64",),
    "int64": ("int32",),
    "uint8": ("int32", "int64"),
    "uint16": ("int32", "int64"),
    "uint32": ("int64", "uint64"),
    "uint64": ("int64",),
    "bool": ("uint8", "int32"),
}
# A float32 stand-in for a float64 target: float32's own rounding bounds the agreement.
_STAND_IN_TOLERANCE = {"float": 1e-4}
# Cases whose result is the type's own extreme value (a reduction over an empty set): no
# other type stands in for it.
_NO_STAND_IN = ("_empty_set",)


def _stand_in(v: Variant) -> tuple[list[list[Any]] | None, str, float | None]:
    """onnxruntime's outputs for ``v``'s case in a stand-in type, cast to the target types."""
    if not ort_trusted(v.case) or any(s in v.case for s in _NO_STAND_IN):
        return None, "", None
    for other in ORT_STAND_INS.get(v.target, ()):
        if other == v.target or ORT_DEVIATIONS.get((v.op, v.constraint, other)):
            continue
        built = sibling(v, other)
        if built is None:
            continue
        refs, _ = _run_ort(*built)
        if refs is not None:
            return _in_target_types(v, refs), other, _STAND_IN_TOLERANCE.get(other)
    return None, "", None


def _float64_reference(v: Variant) -> list[list[Any]] | None:
    """onnxpy's own float64 variant of ``v``'s case, cast to the target types."""
    if v.target not in _NARROW_FLOATS:
        return None
    built = sibling(v, "double")
    return None if built is None else _in_target_types(v, _run_onnxpy(*built))


def _compare(v: Variant, refs: list[list[Any]], results: list[list[Any]], how: Any) -> None:
    dev, floor = how
    for k, (ref_outs, outs) in enumerate(zip(refs, results)):
        for i, (r, o) in enumerate(zip(ref_outs, outs)):
            what = f"{v.id}: data set {k}, output {i}"
            if dev is not None:
                if dev.outputs is not None and i in dev.outputs:
                    continue
                if dev.atol:
                    np.testing.assert_allclose(o, r, rtol=0, atol=dev.atol, err_msg=what)
                    continue
            tol = TOLERANCE.get(v.out_types[i] or "")
            if tol is not None and floor is not None:
                tol = max(tol, floor)
            assert_close(r, o, tol, what)


def check_variant(v: Variant) -> Outcome:
    """Run ``v`` through onnxpy and check it (AssertionError if wrong); say how it was checked.

    The expectation, by preference: onnxruntime in the target type ('ort'); onnxruntime in a
    stand-in type ('ort-<type>'); onnxpy's own float64 variant ('f64'); else only dtype and
    shape are checked ('dtype').
    """
    results = _run_onnxpy(v.model, v.data_sets)
    for k, outs in enumerate(results):
        _check_types(v, k, outs)
    if v.random:
        return Outcome("random", "skipped")
    refs, status, dev = _oracle(v)
    check, floor = "ort", None
    if refs is None and not status.startswith(("untrusted", "deviation")):
        refs, other, floor = _stand_in(v)
        check = f"ort-{other}"
    if refs is None:
        refs, check = _float64_reference(v), "f64"
    if refs is None:
        return Outcome("dtype", status)
    _compare(v, refs, results, (dev, floor))
    return Outcome(check, status)


def pairs(variants: list[Variant]) -> dict[tuple[str, str], list[Variant]]:
    """Variants grouped by (op, target element type)."""
    out: dict[tuple[str, str], list[Variant]] = defaultdict(list)
    for v in variants:
        out[(v.op, v.target)].append(v)
    return dict(sorted(out.items()))


def _main() -> None:
    """Statistics of the sweep, per (op, type) pair (for reports; the test prints nothing)."""
    warnings.simplefilter("ignore")
    refused: list[str] = []
    grouped = pairs(all_variants(refused))
    strongest: Counter[str] = Counter()
    lacks_some, lacks_all, dtype_only, failures = [], [], [], []
    statuses: Counter[str] = Counter()
    for (op, target), variants in grouped.items():
        outcomes = []
        for v in variants:
            try:
                outcomes.append(check_variant(v))
            except AssertionError as e:
                failures.append(f"{v.id}: {' '.join(str(e).split())[:300]}")
        statuses.update(o.ort.split(":")[0] for o in outcomes)
        checks = {"ort-stand-in" if o.check.startswith("ort-") else o.check for o in outcomes}
        order = ("ort", "ort-stand-in", "f64", "dtype", "random")
        best = next((c for c in order if c in checks), "failed")
        strongest[best] += 1
        if best == "dtype":
            dtype_only.append(f"{op}:{target}")
        if any(o.ort == "not_implemented" for o in outcomes):
            lacks_some.append(f"{op}:{target}")
            if all(o.ort == "not_implemented" for o in outcomes):
                lacks_all.append(f"{op}:{target}")
    n_var = sum(len(v) for v in grouped.values())
    print(f"{len(grouped)} (op, type) pairs swept: {n_var} variants ({len(refused)} refused)")
    print("pairs by strongest check:", dict(strongest))
    print("variants by onnxruntime status:", dict(statuses))
    print(f"{len(lacks_all)} pairs onnxruntime has no kernel for:", " ".join(lacks_all))
    print(f"{len(lacks_some)} pairs it lacks for some variant:", " ".join(lacks_some))
    print(f"{len(dtype_only)} pairs checked for dtype and shape only:", " ".join(dtype_only))
    print("refused by checker/inference:", " ".join(refused))
    print(f"{len(failures)} failing variants", *failures, sep="\n")


if __name__ == "__main__":
    sys.exit(_main())
