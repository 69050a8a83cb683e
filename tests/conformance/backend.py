# ruff: noqa: E501 - the generator script is data for a subprocess
"""The ONNX backend test suite as data: generate, enumerate, load and compare its cases.

The onnx wheel ships the node-case *generators*, not their data; ``ensure_node_cases`` writes
them once into a cache folder outside git (``$ONNXPY_CACHE_DIR``, default ``~/.cache/onnxpy``).
The simple / pytorch-converted / pytorch-operator suites and the 8 light models ship as data.
Comparison follows the onnx backend runner: same length, shape, dtype, then
``assert_allclose(rtol, atol)`` (exact for strings; bfloat16 at two ULPs).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

SUITES = ("node", "simple", "pytorch-converted", "pytorch-operator", "light")
ONNX_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
HERE = Path(__file__).parent


def cache_root() -> Path:
    import ml_dtypes

    root = os.environ.get("ONNXPY_CACHE_DIR") or os.path.join(Path.home(), ".cache", "onnxpy")
    # The node cases' expected values are computed by the installed onnx *and* ml_dtypes (casts
    # to the sub-byte and float8 types go through ml_dtypes): a new version of either writes
    # new data, never reuses the old.
    return Path(root) / f"backend-onnx-{onnx.__version__}-ml_dtypes-{ml_dtypes.__version__}"


_GENERATE = r"""
import json, os, sys, shutil, warnings
warnings.simplefilter("ignore")
import numpy as np
from onnx import numpy_helper
import onnx.backend.test.case.node as node_cases
out = sys.argv[1]
for case in node_cases.collect_testcases(None):
    d = os.path.join(out, case.name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(case.model.SerializeToString())
    with open(os.path.join(d, "tolerance.json"), "w") as f:
        json.dump({"rtol": case.rtol, "atol": case.atol}, f)
    graph_inputs = case.model.graph.input
    for k, (inputs, outputs) in enumerate(case.data_sets):
        ds = os.path.join(d, f"test_data_set_{k}")
        os.makedirs(ds, exist_ok=True)
        for kind, values, vis in (("input", inputs, graph_inputs), ("output", outputs, case.model.graph.output)):
            for j, v in enumerate(values):
                tp = vis[j].type
                if tp.HasField("map_type"):
                    proto = numpy_helper.from_dict(v, vis[j].name)
                elif tp.HasField("sequence_type"):
                    proto = numpy_helper.from_list(v, vis[j].name)
                elif tp.HasField("optional_type"):
                    proto = numpy_helper.from_optional(v, vis[j].name)
                elif hasattr(v, "SerializeToString"):
                    proto = v
                else:
                    proto = numpy_helper.from_array(np.asarray(v) if not isinstance(v, np.ndarray) else v, vis[j].name)
                with open(os.path.join(ds, f"{kind}_{j}.pb"), "wb") as f:
                    f.write(proto.SerializeToString())
open(os.path.join(out, ".complete"), "w").close()
"""


def ensure_node_cases() -> Path:
    """Generate the node cases into the cache (about 15 s, once per onnx version)."""
    root = cache_root() / "node"
    if (root / ".complete").exists():
        return root
    # Unique scratch folder: parallel test workers may generate at the same time; the first
    # to finish wins and the others discard their copy.
    tmp = root.with_name(f"node.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    subprocess.run([sys.executable, "-c", _GENERATE, str(tmp)], check=True)
    try:
        if (root / ".complete").exists():
            raise FileExistsError(root)
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (root / ".complete").exists():
            raise
    return root


@dataclass
class Case:
    suite: str
    name: str
    model_path: Path
    data_sets: list[tuple[list[Path], list[Path]]] = field(default_factory=list)
    rtol: float = 1e-3
    atol: float = 1e-7

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.name}"


def _data_sets(case_dir: Path) -> list[tuple[list[Path], list[Path]]]:
    out = []
    for ds in sorted(case_dir.glob("test_data_set_*")):
        ins = sorted(ds.glob("input_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
        outs = sorted(ds.glob("output_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
        out.append((ins, outs))
    return out


def _light_tolerances() -> dict[str, tuple[float, float]]:
    from onnx.backend.test.case import model as model_cases

    tol = {}
    for c in model_cases.collect_testcases():
        if c.kind == "real":
            tol[c.model_name] = (c.rtol, c.atol)
    return tol


def collect(suites: tuple[str, ...] = SUITES) -> list[Case]:
    cases: list[Case] = []
    if "node" in suites:
        root = ensure_node_cases()
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            tol = json.loads((d / "tolerance.json").read_text())
            cases.append(
                Case("node", d.name, d / "model.onnx", _data_sets(d), tol["rtol"], tol["atol"])
            )
    for suite in ("simple", "pytorch-converted", "pytorch-operator"):
        if suite in suites:
            for d in sorted(p for p in (ONNX_DATA / suite).iterdir() if p.is_dir()):
                cases.append(Case(suite, d.name, d / "model.onnx", _data_sets(d)))
    if "light" in suites:
        tols = _light_tolerances()
        for path in sorted(glob.glob(str(ONNX_DATA / "light" / "light_*.onnx"))):
            p = Path(path)
            name = p.stem[len("light_") :]
            rtol, atol = tols.get(name, (1e-3, 1e-7))
            cases.append(Case("light", name, p, [], rtol, atol))
    return cases


def _load_value(path: Path, tp: onnx.TypeProto | None) -> Any:
    data = path.read_bytes()
    which = tp.WhichOneof("value") if tp is not None else "tensor_type"
    if which == "sequence_type":
        proto = onnx.SequenceProto()
        proto.ParseFromString(data)
        return numpy_helper.to_list(proto)
    if which == "map_type":
        proto = onnx.MapProto()
        proto.ParseFromString(data)
        return numpy_helper.to_dict(proto)
    if which == "optional_type":
        proto = onnx.OptionalProto()
        proto.ParseFromString(data)
        return numpy_helper.to_optional(proto)
    proto = onnx.TensorProto()
    proto.ParseFromString(data)
    return numpy_helper.to_array(proto)


def _light_inputs(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = tuple(
            d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim
        )
        n = int(np.prod(shape))
        feeds[vi.name] = (np.arange(n).reshape(shape) / n).astype(np.float32)
    return feeds


def load_case(case: Case) -> list[tuple[dict[str, Any], list[Any]]]:
    """(feeds, expected outputs) for each data set of a case."""
    model = onnx.load(str(case.model_path), load_external_data=False)
    if case.suite == "light":
        prefix = str(case.model_path)[: -len(".onnx")]
        outs = [
            _load_value(Path(f"{prefix}_output_{i}.pb"), vi.type)
            for i, vi in enumerate(model.graph.output)
        ]
        return [(_light_inputs(model), outs)]
    inits = {i.name for i in model.graph.initializer}
    graph_inputs = [vi for vi in model.graph.input if vi.name not in inits] or list(
        model.graph.input
    )
    result = []
    for ins, outs in case.data_sets:
        feeds = {}
        for j, p in enumerate(ins):
            vi = graph_inputs[j] if j < len(graph_inputs) else model.graph.input[j]
            feeds[vi.name] = _load_value(p, vi.type)
        expected = [_load_value(p, model.graph.output[j].type) for j, p in enumerate(outs)]
        result.append((feeds, expected))
    return result


def assert_similar(expected: list[Any], actual: list[Any], rtol: float, atol: float) -> None:
    """The backend runner's comparison, plus an exact type check on containers."""
    assert len(actual) == len(expected), f"{len(actual)} outputs, expected {len(expected)}"
    for i, (ref, out) in enumerate(zip(expected, actual)):
        if isinstance(ref, (list, tuple)):
            assert isinstance(out, (list, tuple)), (
                f"output {i}: expected a sequence, got {type(out)}"
            )
            assert_similar(list(ref), list(out), rtol, atol)
            continue
        if ref is None:
            assert out is None, f"output {i}: expected None (empty optional), got {type(out)}"
            continue
        if isinstance(ref, dict):
            assert isinstance(out, dict) and out.keys() == ref.keys(), f"output {i}: map mismatch"
            assert_similar(list(ref.values()), list(out.values()), rtol, atol)
            continue
        assert isinstance(out, np.ndarray), (
            f"output {i}: expected ndarray, got {type(out).__name__}"
        )
        np.testing.assert_array_equal(
            out.shape, ref.shape, err_msg=f"Output {i} has incorrect shape"
        )
        if ref.dtype == object:
            np.testing.assert_array_equal(out, ref)
            continue
        np.testing.assert_equal(out.dtype, ref.dtype, err_msg=f"Output {i} has incorrect dtype")
        r = rtol
        if out.dtype.name == "bfloat16":
            r = max(rtol, 2**-6)
        if out.dtype.name not in ("float32", "float64", "float16", "complex64", "complex128") and (
            out.dtype.kind == "V"
            or out.dtype.name.startswith(
                ("float8", "float4", "float6", "bfloat", "int4", "uint4", "int2", "uint2")
            )
        ):
            out = out.astype(np.float32)
            ref = ref.astype(np.float32)
        np.testing.assert_allclose(out, ref, rtol=r, atol=atol, err_msg=f"Output {i} differs")


# Cases whose expected values were drawn from an unseeded random generator (NumPy's global one,
# even in the "seed" variant): the values cannot be reproduced by any runtime, so, as the
# conformance issue specifies, only what the suite can check is checked: shape, dtype, and that
# every value is a Bernoulli outcome (0 or 1).
RANDOM_OUTPUT_CASES = ("test_bernoulli",)


def assert_random_outcomes(expected: list[Any], actual: list[Any]) -> None:
    assert len(actual) == len(expected)
    for ref, out in zip(expected, actual):
        assert isinstance(out, np.ndarray)
        assert out.shape == ref.shape and out.dtype == ref.dtype, (out.shape, out.dtype)
        assert np.isin(out, (0, 1)).all(), "Bernoulli outcomes must be 0 or 1"


# Cases whose data holds inputs for which the specification defines no result: a float cast to a
# fixed-point type is "undefined if out of range" (Cast, "Casting from floating point to fixed
# point"). The generator computes those elements with whatever the installed ml_dtypes does, and
# that changed between releases (0.6 wraps, 0.7 gives 0), so no runtime can be held to them.
# Only the in-range elements are compared with the suite; the out-of-range ones are checked
# against onnxpy's documented choice (truncate, then wrap, as onnxruntime does for integral
# values) in tests/kernels/test_cast.py. Maps a case-name pattern to the target's range.
_SUB_BYTE_RANGE = {"INT4": (-8, 7), "UINT4": (0, 15), "INT2": (-2, 1), "UINT2": (0, 3)}
FLOAT_TO_FIXED_CASES = re.compile(
    r"test_cast(?:like)?_(?:FLOAT|FLOAT16)_to_(U?INT[42])(?:_expanded)?$"
)


def in_range_mask(case_name: str, feeds: dict[str, Any]) -> np.ndarray | None:
    """Elements of a float -> fixed-point cast case whose result the spec defines (else None)."""
    m = FLOAT_TO_FIXED_CASES.match(case_name)
    if m is None:
        return None
    lo, hi = _SUB_BYTE_RANGE[m.group(1)]
    x = np.asarray(next(iter(feeds.values())), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        t = np.trunc(x)
        return np.isfinite(x) & (t >= lo) & (t <= hi)


def run_case(case: Case) -> None:
    """Run every data set of ``case`` through onnxpy; raise AssertionError on a mismatch."""
    import onnxpy

    sess = onnxpy.InferenceSession(str(case.model_path))
    names = [o.name for o in sess.get_outputs()]
    random_output = case.name.startswith(RANDOM_OUTPUT_CASES)
    for feeds, expected in load_case(case):
        actual = sess.run(names, feeds)
        mask = in_range_mask(case.name, feeds)
        if random_output:
            assert_random_outcomes(expected, actual)
        elif mask is not None:
            assert mask.any() and not mask.all(), "the case should hold both kinds of element"
            assert [a.shape for a in actual] == [e.shape for e in expected]
            assert [a.dtype for a in actual] == [e.dtype for e in expected]
            assert_similar([expected[0][mask]], [actual[0][mask]], case.rtol, case.atol)
        else:
            assert_similar(expected, actual, case.rtol, case.atol)


def expected_failures() -> dict[str, str]:
    """case id -> reason, from expected_failures.txt."""
    path = HERE / "expected_failures.txt"
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            case_id, _, reason = line.partition(" ")
            out[case_id] = reason.strip() or "unspecified"
    return out
