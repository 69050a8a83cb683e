"""The compiled (numba) tree walk against the NumPy walk, and both against onnxruntime.

Random ensembles cover every branch mode, BRANCH_MEMBER sets, NaN features routed by
nodes_missing_value_tracks_true, the four aggregate functions, classifiers and regressors,
dense and sparse vote tables and batches of 0, 1, a few, many rows and one big enough to be
split over threads. The jit and the NumPy walk must agree bit for bit; without numba only
the comparisons with onnxruntime (whichever walk is active) run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from onnx import TensorProto, helper

import onnxpy
from onnxpy.kernels.ai_onnx_ml import _tree_eval as trees
from onnxpy.kernels.registry import lookup

ML = "ai.onnx.ml"
VALUES = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])  # features and splits: EQ/NEQ/MEMBER hit often
BATCHES = (0, 1, 5, 100, 3000)


def _ensemble(seed, n_trees=12, depth=6, n_targets=3, modes=range(7), missing=True, values=VALUES):
    """Random TreeEnsemble (opset 5) attributes; leaf votes may skip targets."""
    rng = np.random.default_rng(seed)
    nodes = {k: [] for k in ("mode", "feature", "split", "true", "tleaf", "false", "fleaf")}
    nodes["missing"] = []
    leaves = {"target": [], "weight": []}
    sets = []
    roots = []

    def leaf():
        leaves["target"].append(int(rng.integers(n_targets)))
        leaves["weight"].append(float(np.float32(rng.normal())))
        return len(leaves["target"]) - 1, 1

    def grow(d):
        if d == 0 or (d < depth and rng.random() < 0.2):
            return leaf()
        i = len(nodes["mode"])
        mode = int(rng.choice(list(modes)))
        nodes["mode"].append(mode)
        nodes["feature"].append(int(rng.integers(4)))
        nodes["split"].append(float(rng.choice(values)))
        nodes["missing"].append(int(rng.random() < 0.5) if missing else 0)
        if mode == 6:
            sets.append(rng.choice(values, size=int(rng.integers(1, 4)), replace=False))
        for k in ("true", "tleaf", "false", "fleaf"):
            nodes[k].append(0)
        nodes["true"][i], nodes["tleaf"][i] = grow(d - 1)
        nodes["false"][i], nodes["fleaf"][i] = grow(d - 1)
        return i, 0

    for _ in range(n_trees):
        i, is_leaf = grow(depth)
        assert not is_leaf
        roots.append(i)
    members = [v for s in sets for v in (*s, np.nan)]
    attrs = dict(
        n_targets=n_targets,
        nodes_modes=np.array(nodes["mode"], dtype=np.uint8),
        nodes_featureids=nodes["feature"],
        nodes_splits=np.array(nodes["split"]),
        nodes_truenodeids=nodes["true"],
        nodes_trueleafs=nodes["tleaf"],
        nodes_falsenodeids=nodes["false"],
        nodes_falseleafs=nodes["fleaf"],
        nodes_missing_value_tracks_true=nodes["missing"],
        leaf_targetids=leaves["target"],
        leaf_weights=np.array(leaves["weight"]),
        tree_roots=roots,
    )
    if members:
        attrs["membership_values"] = np.array(members)
    return attrs


def _x(n, seed, dtype=np.float32, nan=0.1, offsets=(0.0, 0.25)):
    rng = np.random.default_rng(seed)
    x = rng.choice(VALUES, size=(n, 4)) + rng.choice(offsets, size=(n, 4))
    x[rng.random((n, 4)) < nan] = np.nan
    return x.astype(dtype)


def _build(monkeypatch, op, since, jit, attrs):
    monkeypatch.setattr(trees, "_JIT_DISABLED", not jit)
    monkeypatch.setattr(trees, "_JIT_MIN_WALK", 0)  # small test forests take the jit too
    monkeypatch.setattr(trees, "_JIT_MIN_NODES", 0)
    fn = lookup(ML, op, since).fn(None, **attrs)
    monkeypatch.undo()
    return fn


def _both(monkeypatch, op, since, attrs):
    """The kernel built with the NumPy walk and with the jit (which must be in use)."""
    pytest.importorskip("numba")
    plain = _build(monkeypatch, op, since, False, attrs)
    jit = _build(monkeypatch, op, since, True, attrs)
    assert trees._jit_module() is not None
    return plain, jit


def _same(a, b):
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("aggregate", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tree_ensemble_every_mode_jit_matches_numpy(monkeypatch, aggregate, dtype):
    attrs = _ensemble(seed=aggregate, n_trees=50)
    attrs["aggregate_function"] = aggregate
    assert set(attrs["nodes_modes"].tolist()) == set(range(7))
    plain, jit = _both(monkeypatch, "TreeEnsemble", 5, attrs)
    for n in BATCHES:
        x = _x(n, seed=n, dtype=dtype)
        _same(plain(x), jit(x))
    x = _x(40, seed=1, dtype=dtype)
    batch = jit(x)
    for i in range(len(x)):  # a row scores the same alone or in a batch
        _same(jit(x[i : i + 1]), batch[i : i + 1])


@pytest.mark.parametrize("mode", [0, 1, 2, 3, 4, 5])
def test_single_mode_forests_jit_matches_numpy(monkeypatch, mode):
    # One comparison everywhere, no missing_value_tracks_true: the packed layout.
    attrs = _ensemble(seed=10 + mode, n_trees=20, modes=[mode], missing=False)
    plain, jit = _both(monkeypatch, "TreeEnsemble", 5, attrs)
    for n in BATCHES:
        _same(plain(_x(n, seed=n, nan=0.0)), jit(_x(n, seed=n, nan=0.0)))
        _same(plain(_x(n, seed=n)), jit(_x(n, seed=n)))  # NaNs take the false side


@pytest.mark.parametrize("aggregate", [0, 1, 2, 3])
def test_few_rows_split_their_trees_over_numba_threads(monkeypatch, aggregate):
    # Packed forest, dense votes, fewer rows than a split by rows needs: the trees are walked
    # on numba's threads (where its pool spins), the votes added in tree order: bit for bit
    # the NumPy walk's, and the single-thread jit's.
    from onnxpy.kernels import jit as jit_lib
    from onnxpy.kernels.ai_onnx_ml import _tree_jit
    from onnxpy.kernels.threads import apply_intra_op_threads, intra_op_threads

    calls = []
    original = _tree_jit.JitForest.fill_parallel
    before = intra_op_threads()
    apply_intra_op_threads(2)  # kernels take the count in force when they are built
    try:
        attrs = _ensemble(seed=40 + aggregate, n_trees=130, modes=[0], missing=False)
        attrs["aggregate_function"] = aggregate
        plain, jit = _both(monkeypatch, "TreeEnsemble", 5, attrs)
        monkeypatch.setattr(
            _tree_jit.JitForest,
            "fill_parallel",
            lambda self, x, out, t: calls.append((len(x), t)) or original(self, x, out, t),
        )
        for threads in (2, 1):
            apply_intra_op_threads(threads)
            calls.clear()
            for n in (1, 5, 30):
                x = _x(n, seed=n, nan=0.0)
                _same(plain(x), jit(x))
            spins = jit_lib.spinning_pool()
            expected = [(1, 2), (5, 2), (30, 2)] if threads == 2 and spins else []
            assert calls == expected, (threads, spins, calls)
    finally:
        apply_intra_op_threads(before)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_walks_on_one_thread_and_gets_the_same_scores(monkeypatch):
    # GNU OpenMP's pool does not survive a fork: after one, the child walks serially.
    from onnxpy.kernels import jit as jit_lib
    from onnxpy.kernels.threads import apply_intra_op_threads, intra_op_threads

    before = intra_op_threads()
    apply_intra_op_threads(2)  # the parent walks on numba's threads before the fork
    try:
        attrs = _ensemble(seed=50, n_trees=130, modes=[0], missing=False)
        plain, jit = _both(monkeypatch, "TreeEnsemble", 5, attrs)
        x = _x(3, seed=3, nan=0.0)
        expected = plain(x)
        _same(jit(x), expected)
        assert jit_lib.parallel_allowed()
        pid = os.fork()
        if pid == 0:  # the child: exit status 0 only when it scored the rows right
            ok = not jit_lib.parallel_allowed() and np.array_equal(jit(x), expected)
            os._exit(0 if ok else 1)
        for _ in range(300):  # a hang fails the test instead of stopping the run
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        apply_intra_op_threads(before)


def test_sparse_vote_table_jit_matches_numpy(monkeypatch):
    monkeypatch.setattr(trees, "_DENSE_LIMIT", 4)
    attrs = _ensemble(seed=3, n_trees=10)
    plain, jit = _both(monkeypatch, "TreeEnsemble", 5, attrs)
    monkeypatch.setattr(trees, "_DENSE_LIMIT", 4)
    for n in (0, 1, 7, 200):
        _same(plain(_x(n, seed=n)), jit(_x(n, seed=n)))


_NAMES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]


def _legacy(attrs, prefix, n_classes=None):
    """TreeEnsemble (opset 5) attributes recast as TreeEnsembleRegressor/Classifier ones."""
    n_int = len(attrs["nodes_modes"])
    n_leaf = len(attrs["leaf_targetids"])
    tree_of = np.zeros(n_int + n_leaf, dtype=np.int64)

    def ids(i, is_leaf):
        return i + n_int if is_leaf else i

    true = [ids(i, lf) for i, lf in zip(attrs["nodes_truenodeids"], attrs["nodes_trueleafs"])]
    false = [ids(i, lf) for i, lf in zip(attrs["nodes_falsenodeids"], attrs["nodes_falseleafs"])]
    for t, root in enumerate(attrs["tree_roots"]):
        stack = [root]
        while stack:
            i = stack.pop()
            tree_of[i] = t
            if i < n_int:
                stack += [true[i], false[i]]
    targets = np.asarray(attrs["leaf_targetids"])
    out = dict(
        nodes_treeids=tree_of.tolist(),
        nodes_nodeids=list(range(n_int + n_leaf)),
        nodes_featureids=list(attrs["nodes_featureids"]) + [0] * n_leaf,
        nodes_values=np.concatenate([attrs["nodes_splits"], np.zeros(n_leaf)]).astype(np.float32),
        nodes_modes=[_NAMES[m] for m in attrs["nodes_modes"]] + ["LEAF"] * n_leaf,
        nodes_truenodeids=true + [0] * n_leaf,
        nodes_falsenodeids=false + [0] * n_leaf,
        nodes_missing_value_tracks_true=list(attrs["nodes_missing_value_tracks_true"])
        + [0] * n_leaf,
        **{
            f"{prefix}_treeids": tree_of[n_int:].tolist(),
            f"{prefix}_nodeids": list(range(n_int, n_int + n_leaf)),
            f"{prefix}_ids": (targets if n_classes is None else targets % n_classes).tolist(),
            f"{prefix}_weights": np.asarray(attrs["leaf_weights"], dtype=np.float32),
        },
    )
    if n_classes is not None:
        out["classlabels_int64s"] = list(range(10, 10 + n_classes))
    return out


@pytest.mark.parametrize("aggregate", ["SUM", "AVERAGE", "MIN", "MAX"])
def test_legacy_regressor_jit_matches_numpy(monkeypatch, aggregate):
    attrs = _legacy(_ensemble(seed=20, n_trees=30, modes=range(6)), "target")
    attrs.update(n_targets=3, aggregate_function=aggregate, base_values=[0.5, -1.0, 2.0])
    plain, jit = _both(monkeypatch, "TreeEnsembleRegressor", 3, attrs)
    for n in BATCHES:
        for dtype in (np.float32, np.float64):
            _same(plain(_x(n, seed=n, dtype=dtype)), jit(_x(n, seed=n, dtype=dtype)))
    ints = np.arange(40, dtype=np.int64).reshape(10, 4) % 3 - 1
    _same(plain(ints), jit(ints))


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("post", ["NONE", "SOFTMAX", "LOGISTIC"])
def test_legacy_classifier_jit_matches_numpy(monkeypatch, n_classes, post):
    attrs = _legacy(_ensemble(seed=30 + n_classes, n_trees=25, modes=range(6)), "class", n_classes)
    attrs["post_transform"] = post
    plain, jit = _both(monkeypatch, "TreeEnsembleClassifier", 3, attrs)
    for n in BATCHES:
        _same(plain(_x(n, seed=n)), jit(_x(n, seed=n)))


def test_tree_ensemble_matches_onnxruntime():
    # onnxruntime as the oracle of the random opset-5 ensembles (whichever walk is active).
    # Features are integer-valued: onnxruntime truncates a feature to an integer before a
    # BRANCH_MEMBER test (0.5 counts as a member of {0}), where the spec and onnxpy test the
    # value itself; on integers the two agree.
    ort = pytest.importorskip("onnxruntime")
    attrs = _ensemble(seed=5, n_trees=40, modes=range(7), values=np.array([-1.0, 0.0, 1.0, 2.0]))
    attrs["aggregate_function"] = 1
    kw = {k: v for k, v in attrs.items() if k not in ("nodes_splits", "leaf_weights")}
    kw["nodes_modes"] = helper.make_tensor(
        "m", TensorProto.UINT8, [len(attrs["nodes_modes"])], attrs["nodes_modes"].tolist()
    )
    for name in ("nodes_splits", "leaf_weights", "membership_values"):
        if name in attrs:
            v = np.asarray(attrs[name], dtype=np.float32)
            kw[name] = helper.make_tensor(name, TensorProto.FLOAT, [len(v)], v.tolist())
    node = helper.make_node("TreeEnsemble", ["X"], ["Y"], domain=ML, **kw)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 3])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid(ML, 5)]
    )
    model.ir_version = 10
    data = model.SerializeToString()
    try:
        ref = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as e:  # an onnxruntime without ai.onnx.ml opset 5
        pytest.skip(f"onnxruntime cannot load TreeEnsemble: {e}")
    sess = onnxpy.InferenceSession(data)
    for n in (1, 5, 100, 3000):
        rng = np.random.default_rng(n)
        x = rng.choice([-1.0, 0.0, 1.0, 2.0, 3.0], size=(n, 4)).astype(np.float32)
        x[rng.random((n, 4)) < 0.1] = np.nan
        np.testing.assert_allclose(
            sess.run(None, {"X": x})[0], ref.run(None, {"X": x})[0], rtol=1e-5, atol=1e-5
        )


def _runner_of(fn):
    """The forest runner a tree kernel's run function closes over."""
    for cell in fn.__closure__:
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(value, trees._Runner):
            return value
    raise AssertionError("no forest runner in the kernel's closure")


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_sklearn_forests_match_onnxruntime(kind, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx
    from sklearn import ensemble
    from sklearn.datasets import make_classification, make_regression

    if kind == "classifier":
        x, y = make_classification(400, 8, n_informative=5, n_classes=3, random_state=0)
        model = ensemble.RandomForestClassifier(n_estimators=110, max_depth=10, random_state=0)
    else:
        x, y = make_regression(400, 8, n_targets=2, random_state=0)
        model = ensemble.RandomForestRegressor(n_estimators=110, max_depth=10, random_state=0)
    x = x.astype(np.float32)
    model.fit(x, y)
    opts = {id(model): {"zipmap": False}} if kind == "classifier" else None
    data = to_onnx(model, x[:1], options=opts).SerializeToString()
    ref = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    monkeypatch.setattr(trees, "_JIT_MIN_NODES", 0)  # ~8,000 nodes: below the real threshold
    sess = onnxpy.InferenceSession(data)
    if trees._jit_module() is not None:  # 110 trees x 10 levels: the compiled walk
        assert _runner_of(sess._plan_for(None).steps[0].fn).jit is not None
    for n in (0, 1, 7, 400):
        xs = x[:n]
        got, want = sess.run(None, {"X": xs}), ref.run(None, {"X": xs})
        for g, w in zip(got, want, strict=True):
            if g.dtype.kind in "iu":
                np.testing.assert_array_equal(g, w)
            else:
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def _python(code, **env):
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_numba_is_imported_only_when_a_compiled_kernel_is_built():
    code = (
        "import sys, onnxpy\n"
        "print('numba' in sys.modules)\n"
        "from onnxpy.kernels.ai_onnx_ml import _tree_eval as trees\n"
        "print(trees._jit_module() is not None)\n"
    )
    lines = _python(code).splitlines()
    assert lines[0] == "False"
    try:
        import numba  # noqa: F401
    except ImportError:
        assert lines[1] == "False"
    else:
        assert lines[1] == "True"


def test_small_forest_does_not_load_numba():
    """Below _JIT_MIN_WALK trees x levels (or _JIT_MIN_NODES nodes) the NumPy walk serves (no
    LLVM in the process)."""
    code = (
        "import sys, numpy as np, onnxpy\n"
        "from onnx import TensorProto, helper\n"
        "node = helper.make_node('TreeEnsembleRegressor', ['X'], ['Y'], domain='ai.onnx.ml',\n"
        "    n_targets=1, nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2],\n"
        "    nodes_featureids=[0, 0, 0], nodes_values=[0.5, 0, 0],\n"
        "    nodes_modes=['BRANCH_LEQ', 'LEAF', 'LEAF'], nodes_truenodeids=[1, 0, 0],\n"
        "    nodes_falsenodeids=[2, 0, 0], target_treeids=[0, 0], target_nodeids=[1, 2],\n"
        "    target_ids=[0, 0], target_weights=[-1.0, 1.0])\n"
        "g = helper.make_graph([node], 'g',\n"
        "    [helper.make_tensor_value_info('X', TensorProto.FLOAT, [None, 1])],\n"
        "    [helper.make_tensor_value_info('Y', TensorProto.FLOAT, [None, 1])])\n"
        "m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17),\n"
        "    helper.make_opsetid('ai.onnx.ml', 3)])\n"
        "s = onnxpy.InferenceSession(m.SerializeToString())\n"
        "y = s.run(None, {'X': np.array([[0.0], [1.0]], np.float32)})[0]\n"
        "print(y.ravel().tolist(), 'numba' in sys.modules)\n"
    )
    assert _python(code) == "[-1.0, 1.0] False"


def test_disable_jit_environment_variable():
    code = (
        "import sys\n"
        "from onnxpy.kernels.ai_onnx_ml import _tree_eval as trees\n"
        "print(trees._jit_module() is None, 'numba' in sys.modules)\n"
    )
    assert _python(code, ONNXPY_DISABLE_JIT="1") == "True False"
