"""Graph optimizer: each pass changes what it should and nothing computes differently.

Every hand-built model is run twice through onnxpy with optimizations disabled: as built and
as optimized, on the same random inputs. The optimized model must pass the ONNX checker and
keep the graph's inputs and outputs.
"""

from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxpy
from onnxpy.passes import PassManager, optimize, passes_for_level
from onnxpy.passes.common import (
    CastElimination,
    CommonSubexpressionElimination,
    ConstantFolding,
    DeadCodeElimination,
    IdentityElimination,
    NoopElimination,
    ShapeFolding,
    TransposeCancellation,
)
from onnxpy.passes.fusion import ConvAddMulFusion, ConvBatchNormFusion, MatMulAddFusion

F = TensorProto.FLOAT
LEVEL = onnxpy.GraphOptimizationLevel
DCE = DeadCodeElimination()


def make_model(nodes, inputs, outputs, inits=(), opset=17, ir=8):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir
    return m


def vi(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def run(model, feeds, level=LEVEL.ORT_DISABLE_ALL):
    so = onnxpy.SessionOptions()
    so.graph_optimization_level = level
    return onnxpy.InferenceSession(model.SerializeToString(), so).run(None, feeds)


def random_feeds(model, seed=0, dims=None):
    rng = np.random.default_rng(seed)
    init_names = {t.name for t in model.graph.initializer}
    feeds = {}
    for v in model.graph.input:
        if v.name in init_names:
            continue
        shape = [
            d.dim_value or (dims or {}).get(d.dim_param, 3) for d in v.type.tensor_type.shape.dim
        ]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
        feeds[v.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def ops(model):
    return collections.Counter(n.op_type for n in model.graph.node)


def check(model, passes, feeds=None, rtol=1e-6, atol=1e-6):
    """Optimize with ``passes`` (then dead code); assert validity and equal outputs."""
    before = onnx.ModelProto()
    before.CopyFrom(model)
    opt = optimize(model, LEVEL.ORT_ENABLE_ALL, passes=list(passes) + [DCE])
    assert model == before, "optimize must not modify its argument"
    onnx.checker.check_model(opt, full_check=True)
    assert [v.name for v in opt.graph.input] == [v.name for v in model.graph.input]
    assert [v.name for v in opt.graph.output] == [v.name for v in model.graph.output]
    feeds = random_feeds(model) if feeds is None else feeds
    expected = run(model, feeds)
    actual = run(opt, feeds)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
    return opt


# -- constant folding --------------------------------------------------------------------------
def test_constant_folding_evaluates_constant_subgraph():
    m = make_model(
        [
            helper.make_node("Constant", [], ["a"], value=init("", np.full(4, 2.0, np.float32))),
            helper.make_node("Mul", ["a", "b"], ["ab"]),
            helper.make_node("Sqrt", ["ab"], ["s"]),
            helper.make_node("Add", ["X", "s"], ["Y"]),
        ],
        [vi("X", ["N", 4])],
        [vi("Y", ["N", 4])],
        [init("b", np.arange(4, dtype=np.float32))],
    )
    opt = check(m, [ConstantFolding()])
    assert ops(opt) == {"Add": 1}
    folded = {t.name: numpy_helper.to_array(t) for t in opt.graph.initializer}
    np.testing.assert_allclose(folded["s"], np.sqrt(2.0 * np.arange(4)), rtol=1e-6)


def test_constant_folding_output_becomes_constant_node():
    m = make_model(
        [helper.make_node("Neg", ["c"], ["Y"])],
        [],
        [vi("Y", [2])],
        [init("c", np.array([1.0, -2.0], np.float32))],
    )
    opt = check(m, [ConstantFolding()], feeds={})
    assert [n.op_type for n in opt.graph.node] == ["Constant"]
    assert run(opt, {})[0].tolist() == [-1.0, 2.0]


def test_constant_folding_leaves_random_and_overridable_and_large():
    m = make_model(
        [
            helper.make_node("RandomUniformLike", ["c"], ["r"], seed=1.0),
            helper.make_node("Relu", ["w"], ["rw"]),  # w is a graph input: overridable
            helper.make_node("ConstantOfShape", ["big_shape"], ["big"]),  # 64 MB: too large
            helper.make_node("ReduceSum", ["big"], ["bs"], keepdims=0),
            helper.make_node("Add", ["r", "rw"], ["t"]),
            helper.make_node("Add", ["t", "bs"], ["Y"]),
        ],
        [vi("w", [3])],
        [vi("Y", [3])],
        [
            init("c", np.zeros(3, np.float32)),
            init("w", np.ones(3, np.float32)),
            init("big_shape", np.array([4096, 4096], np.int64)),
        ],
    )
    opt = optimize(m, LEVEL.ORT_ENABLE_ALL, passes=[ConstantFolding(), DCE])
    assert ops(opt) == ops(m)


def test_constant_folding_before_ir4_uses_constant_nodes():
    m = make_model(
        [
            helper.make_node("Mul", ["a", "a"], ["aa"]),
            helper.make_node("Add", ["X", "aa"], ["Y"]),
        ],
        [vi("X", [3]), vi("a", [3])],
        [vi("Y", [3])],
        [init("a", np.array([1.0, 2.0, 3.0], np.float32))],
        opset=9,
        ir=3,
    )
    # IR 3: every initializer is a graph input, hence overridable: nothing is constant.
    opt = check(m, [ConstantFolding()])
    assert ops(opt) == ops(m)
    m2 = make_model(
        [
            helper.make_node("Constant", [], ["a"], value=init("", np.arange(3, dtype=np.float32))),
            helper.make_node("Mul", ["a", "a"], ["aa"]),
            helper.make_node("Add", ["X", "aa"], ["Y"]),
        ],
        [vi("X", [3])],
        [vi("Y", [3])],
        opset=9,
        ir=3,
    )
    opt = check(m2, [ConstantFolding()])
    assert ops(opt) == {"Constant": 1, "Add": 1} and not opt.graph.initializer


def test_constant_folding_with_external_data(tmp_path):
    big = np.random.default_rng(0).standard_normal((600, 600)).astype(np.float32)  # 1.4 MB
    m = make_model(
        [
            helper.make_node("Neg", ["small"], ["ns"]),
            helper.make_node("Transpose", ["big"], ["bt"]),
            helper.make_node("MatMul", ["X", "bt"], ["xb"]),
            helper.make_node("Add", ["xb", "ns"], ["Y"]),
        ],
        [vi("X", [2, 600])],
        [vi("Y", [2, 600])],
        [init("big", big), init("small", np.arange(600, dtype=np.float32))],
    )
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    loaded = onnx.load(str(path), load_external_data=False)
    opt = optimize(loaded, LEVEL.ORT_ENABLE_BASIC, base_dir=str(tmp_path))
    inits = {t.name: t for t in opt.graph.initializer}
    # The small external tensor is folded; the big one stays on disk, untouched.
    assert ops(opt) == {"Transpose": 1, "MatMul": 1, "Add": 1}
    assert inits["big"].data_location == TensorProto.EXTERNAL
    assert "ns" in inits and inits["ns"].data_location == TensorProto.DEFAULT
    out_path = tmp_path / "opt.onnx"
    onnx.save(opt, str(out_path))
    feeds = random_feeds(m)
    so = onnxpy.SessionOptions()
    so.graph_optimization_level = LEVEL.ORT_DISABLE_ALL
    expected = onnxpy.InferenceSession(str(path), so).run(None, feeds)[0]
    actual = onnxpy.InferenceSession(str(out_path), so).run(None, feeds)[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    # A session on the external-data model optimizes it the same way.
    got = onnxpy.InferenceSession(str(path)).run(None, feeds)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# -- dead code, CSE ----------------------------------------------------------------------------
def test_dead_code_elimination():
    m = make_model(
        [
            helper.make_node("Relu", ["X"], ["Y"]),
            helper.make_node("Exp", ["X"], ["unused"]),
            helper.make_node("Mul", ["unused", "w"], ["unused2"]),
        ],
        [vi("X", [3]), vi("ov", [3])],
        [vi("Y", [3])],
        [init("w", np.ones(3, np.float32)), init("ov", np.ones(3, np.float32))],
    )
    opt = check(m, [])
    assert ops(opt) == {"Relu": 1}
    assert [t.name for t in opt.graph.initializer] == ["ov"]  # overridable input stays


def test_common_subexpression_elimination():
    m = make_model(
        [
            helper.make_node("Relu", ["X"], ["r1"]),
            helper.make_node("Relu", ["X"], ["r2"]),
            helper.make_node("Add", ["r1", "c1"], ["a1"]),
            helper.make_node("Add", ["r2", "c2"], ["a2"]),  # c2 equals c1
            helper.make_node("Mul", ["a1", "a2"], ["Y"]),
            helper.make_node("RandomNormalLike", ["X"], ["n1"], seed=2.0),
            helper.make_node("RandomNormalLike", ["X"], ["n2"], seed=2.0),
            helper.make_node("Sub", ["n1", "n2"], ["Z"]),
        ],
        [vi("X", [4])],
        [vi("Y", [4]), vi("Z", [4])],
        [init("c1", np.full(4, 0.5, np.float32)), init("c2", np.full(4, 0.5, np.float32))],
    )
    opt = optimize(m, LEVEL.ORT_ENABLE_ALL, passes=[CommonSubexpressionElimination(), DCE])
    onnx.checker.check_model(opt, full_check=True)
    assert ops(opt) == {"Relu": 1, "Add": 1, "Mul": 1, "RandomNormalLike": 2, "Sub": 1}
    feeds = random_feeds(m)
    np.testing.assert_allclose(run(opt, feeds)[0], run(m, feeds)[0], rtol=1e-6)


# -- eliminations ------------------------------------------------------------------------------
def test_identity_and_dropout_elimination():
    m = make_model(
        [
            helper.make_node("Identity", ["X"], ["i1"]),
            helper.make_node("Dropout", ["i1", "ratio"], ["d1"]),
            helper.make_node("Relu", ["d1"], ["r"]),
            helper.make_node("Identity", ["r"], ["Y"]),  # graph output: Relu writes Y
        ],
        [vi("X", [5])],
        [vi("Y", [5])],
        [init("ratio", np.array(0.3, np.float32))],
    )
    opt = check(m, [IdentityElimination()])
    assert [(n.op_type, list(n.input), list(n.output)) for n in opt.graph.node] == [
        ("Relu", ["X"], ["Y"])
    ]


def test_dropout_in_training_mode_or_with_used_mask_stays():
    m = make_model(
        [
            helper.make_node("Dropout", ["X", "", "train"], ["d"]),
            helper.make_node("Dropout", ["X"], ["e", "mask"]),
            helper.make_node("Cast", ["mask"], ["mf"], to=F),
            helper.make_node("Add", ["d", "e"], ["de"]),
            helper.make_node("Add", ["de", "mf"], ["Y"]),
        ],
        [vi("X", [5])],
        [vi("Y", [5])],
        [init("train", np.array(True))],
    )
    opt = optimize(m, LEVEL.ORT_ENABLE_ALL, passes=[IdentityElimination(), DCE])
    assert ops(opt)["Dropout"] == 2


def test_identity_between_input_and_output_stays():
    m = make_model([helper.make_node("Identity", ["X"], ["Y"])], [vi("X", [2])], [vi("Y", [2])])
    opt = check(m, [IdentityElimination()])
    assert ops(opt) == {"Identity": 1}


def test_names_read_by_subgraphs_are_kept():
    then_g = helper.make_graph([helper.make_node("Relu", ["a"], ["t"])], "then", [], [vi("t", [3])])
    else_g = helper.make_graph([helper.make_node("Neg", ["a"], ["e"])], "else", [], [vi("e", [3])])
    m = make_model(
        [
            helper.make_node("Identity", ["X"], ["a"]),
            helper.make_node("If", ["cond"], ["Y"], then_branch=then_g, else_branch=else_g),
        ],
        [vi("X", [3])],
        [vi("Y", [3])],
        [init("cond", np.array(False))],
    )
    opt = check(m, passes_for_level(LEVEL.ORT_ENABLE_ALL))
    # The If (constant condition, but a subgraph) and the Identity its bodies read stay.
    assert ops(opt) == {"Identity": 1, "If": 1}


def test_dropout_before_opset_12_is_removed():
    m = make_model(
        [
            helper.make_node("Dropout", ["X"], ["d"], ratio=0.5),
            helper.make_node("Relu", ["d"], ["Y"]),
        ],
        [vi("X", [4])],
        [vi("Y", [4])],
        opset=10,
    )
    opt = check(m, [IdentityElimination()])
    assert ops(opt) == {"Relu": 1}


def test_cast_elimination():
    H, D = TensorProto.FLOAT16, TensorProto.DOUBLE
    m = make_model(
        [
            helper.make_node("Cast", ["X"], ["same"], to=F),  # already float
            helper.make_node("Cast", ["same"], ["h"], to=H),
            helper.make_node("Cast", ["Xh"], ["f"], to=F),  # float16 -> float: exact
            helper.make_node("Cast", ["f"], ["d"], to=D),  # ... so this reads Xh directly
            helper.make_node("Cast", ["h"], ["back"], to=F),  # float -> float16 -> float: kept
        ],
        [vi("X", [6]), vi("Xh", [6], H)],
        [vi("d", [6], D), vi("back", [6])],
    )
    opt = check(m, [CastElimination()])
    casts = [(n.input[0], n.attribute[0].i) for n in opt.graph.node]
    assert sorted(casts) == sorted([("X", H), ("Xh", D), ("h", F)])


def _noop_case(node, inits, removed, out_rank=3):
    return pytest.param([node], inits, removed, out_rank, id=f"{node.op_type}-{removed}")


@pytest.mark.parametrize(
    "nodes, inits, removed, out_rank",
    [
        _noop_case(helper.make_node("Transpose", ["X"], ["Y"], perm=[0, 1, 2]), [], True),
        _noop_case(helper.make_node("Reshape", ["X", "s"], ["Y"]), [init("s", [2, 0, -1])], True),
        _noop_case(helper.make_node("Expand", ["X", "s"], ["Y"]), [init("s", [1, 3, 1])], True),
        _noop_case(
            helper.make_node("Slice", ["X", "b", "e"], ["Y"]),
            [init("b", [0]), init("e", [9])],
            True,
        ),
        # Reverses the last axis: same shape, different values.
        _noop_case(
            helper.make_node("Slice", ["X", "b", "e", "a", "st"], ["Y"]),
            [init("b", [-1]), init("e", [-9]), init("a", [2]), init("st", [-1])],
            False,
        ),
        _noop_case(helper.make_node("Pad", ["X", "p"], ["Y"]), [init("p", [0] * 6)], True),
        _noop_case(
            helper.make_node("Add", ["z", "X"], ["Y"]),
            [init("z", np.zeros((3, 1), np.float32))],
            True,
        ),
        _noop_case(
            helper.make_node("Mul", ["X", "o"], ["Y"]), [init("o", np.ones(4, np.float32))], True
        ),
        # 1 / X is not X.
        _noop_case(
            helper.make_node("Div", ["o", "X"], ["Y"]), [init("o", np.ones(1, np.float32))], False
        ),
        # Broadcasting adds an axis.
        _noop_case(
            helper.make_node("Add", ["X", "z"], ["Y"]),
            [init("z", np.zeros((5, 1, 1, 1), np.float32))],
            False,
            out_rank=4,
        ),
    ],
)
def test_noop_elimination(nodes, inits, removed, out_rank):
    graph_nodes = nodes + [helper.make_node("Relu", ["Y"], ["Z"])]
    out = vi("Z", [f"d{k}" for k in range(out_rank)])
    m = make_model(graph_nodes, [vi("X", [2, 3, 4])], [out], inits)
    opt = check(m, [NoopElimination()])
    assert (ops(opt) == {"Relu": 1}) is removed


@pytest.mark.parametrize(
    ("one", "removed"),
    [(np.float32(1), True), (np.ones(1, np.float32), False)],
    ids=["scalar", "shape-1"],
)
def test_mul_by_one_with_an_unknown_input_shape(one, removed):
    # onnxmltools ends a LightGBM classifier with probabilities * 1, where the tree kernel's
    # output has no inferred shape: a scalar one keeps any shape, a [1] one would turn a
    # rank-0 input into [1], so only the scalar goes.
    # A Reshape to a fed shape: its output's rank is unknown.
    m = make_model(
        [
            helper.make_node("Reshape", ["X", "S"], ["R"]),
            helper.make_node("Mul", ["R", "o"], ["Y"]),
            helper.make_node("Relu", ["Y"], ["Z"]),
        ],
        [vi("X", [2, 3]), vi("S", ["k"], TensorProto.INT64)],
        [vi("Z", ["a", "b"])],
        [init("o", one)],
    )
    feeds = {
        "X": np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32),
        "S": np.array([3, 2], np.int64),
    }
    opt = check(m, [NoopElimination()], feeds=feeds)
    assert (ops(opt) == {"Reshape": 1, "Relu": 1}) is removed


def test_shape_folding():
    m = make_model(
        [
            helper.make_node("Shape", ["X"], ["shp"]),
            helper.make_node("Gather", ["shp", "i1"], ["d1"], axis=0),  # static dim
            helper.make_node("Gather", ["shp", "i0"], ["d0"], axis=0),  # dynamic batch
            helper.make_node("Shape", ["X"], ["tail"], start=1),
            helper.make_node("Concat", ["d0", "neg", "d1"], ["target"], axis=0),
            helper.make_node("Reshape", ["X", "target"], ["r"]),
            helper.make_node("Size", ["tail"], ["n"]),
            helper.make_node("Cast", ["n"], ["nf"], to=F),
            helper.make_node("Mul", ["r", "nf"], ["Y"]),
        ],
        [vi("X", ["N", 4, 6])],
        [vi("Y", ["N", 6, 4])],
        [init("i0", [0]), init("i1", [1]), init("neg", [-1])],
    )
    opt = check(m, [ShapeFolding(), ConstantFolding()])
    # Only the batch dimension is still read at run time.
    assert ops(opt) == {"Shape": 1, "Gather": 1, "Concat": 1, "Reshape": 1, "Mul": 1}


def test_transpose_cancellation():
    m = make_model(
        [
            helper.make_node("Transpose", ["X"], ["t1"], perm=[0, 2, 1]),
            helper.make_node("Transpose", ["t1"], ["t2"], perm=[0, 2, 1]),  # cancels
            helper.make_node("Transpose", ["X"], ["u1"], perm=[1, 2, 0]),
            helper.make_node("Transpose", ["u1"], ["u2"], perm=[0, 2, 1]),  # composes
            helper.make_node("Relu", ["t2"], ["Y"]),
            helper.make_node("Relu", ["u2"], ["Z"]),
        ],
        [vi("X", [2, 3, 4])],
        [vi("Y", [2, 3, 4]), vi("Z", [3, 2, 4])],
    )
    opt = check(m, [TransposeCancellation(), NoopElimination()])
    assert ops(opt) == {"Transpose": 1, "Relu": 2}
    (t,) = [n for n in opt.graph.node if n.op_type == "Transpose"]
    assert list(t.input) == ["X"] and list(t.attribute[0].ints) == [1, 0, 2]


# -- fusions -----------------------------------------------------------------------------------
def _conv_model(tail, tail_inits, bias=True):
    rng = np.random.default_rng(3)
    inits = [init("W", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))]
    conv_in = ["X", "W"]
    if bias:
        inits.append(init("B", rng.standard_normal(4).astype(np.float32)))
        conv_in.append("B")
    nodes = [helper.make_node("Conv", conv_in, ["c"], pads=[1, 1, 1, 1])] + tail
    return make_model(
        nodes, [vi("X", ["N", 3, 5, 5])], [vi("Y", ["N", 4, 5, 5])], inits + tail_inits
    )


@pytest.mark.parametrize("bias", [True, False])
def test_conv_batchnorm_fusion(bias):
    rng = np.random.default_rng(4)
    bn = [
        init("scale", rng.uniform(0.5, 2, 4).astype(np.float32)),
        init("beta", rng.standard_normal(4).astype(np.float32)),
        init("mean", rng.standard_normal(4).astype(np.float32)),
        init("var", rng.uniform(0.5, 2, 4).astype(np.float32)),
    ]
    node = helper.make_node(
        "BatchNormalization", ["c", "scale", "beta", "mean", "var"], ["Y"], epsilon=1e-3
    )
    m = _conv_model([node], bn, bias)
    opt = check(m, [ConvBatchNormFusion()], rtol=1e-5, atol=1e-5)
    assert ops(opt) == {"Conv": 1}
    assert len(opt.graph.node[0].input) == 3
    # BASIC level does not fuse.
    assert ops(optimize(m, LEVEL.ORT_ENABLE_BASIC))["BatchNormalization"] == 1


def test_conv_add_mul_fusion():
    rng = np.random.default_rng(5)
    tail = [
        helper.make_node("Mul", ["k", "c"], ["m"]),
        helper.make_node("Add", ["m", "a"], ["Y"]),
    ]
    consts = [
        init("k", rng.standard_normal((4, 1, 1)).astype(np.float32)),
        init("a", rng.standard_normal((1, 4, 1, 1)).astype(np.float32)),
    ]
    m = _conv_model(tail, consts, bias=False)
    opt = check(m, [ConvAddMulFusion()], rtol=1e-5, atol=1e-5)
    assert ops(opt) == {"Conv": 1}


def test_conv_add_not_per_channel_stays():
    tail = [helper.make_node("Add", ["c", "a"], ["Y"])]
    m = _conv_model(tail, [init("a", np.ones((4, 5, 1), np.float32))])
    opt = check(m, [ConvAddMulFusion()])
    assert ops(opt) == {"Conv": 1, "Add": 1}


def test_matmul_add_to_gemm():
    rng = np.random.default_rng(6)
    m = make_model(
        [
            helper.make_node("MatMul", ["A", "B"], ["ab"]),
            helper.make_node("Add", ["C", "ab"], ["Y"]),
            helper.make_node("MatMul", ["A3", "B"], ["ab3"]),  # 3-D: not a Gemm
            helper.make_node("Add", ["ab3", "C"], ["Z"]),
        ],
        [vi("A", ["N", 6]), vi("A3", [2, "N", 6])],
        [vi("Y", ["N", 5]), vi("Z", [2, "N", 5])],
        [
            init("B", rng.standard_normal((6, 5)).astype(np.float32)),
            init("C", rng.standard_normal(5).astype(np.float32)),
        ],
    )
    opt = check(m, [MatMulAddFusion()], rtol=1e-5, atol=1e-5)
    assert ops(opt) == {"Gemm": 1, "MatMul": 1, "Add": 1}


# -- manager and session -----------------------------------------------------------------------
def test_levels_and_fixed_point():
    m = _conv_model(
        [
            helper.make_node("Identity", ["c"], ["i"]),
            helper.make_node("Mul", ["i", "k"], ["Y"]),
        ],
        [init("k", np.full((4, 1, 1), 2.0, np.float32))],
    )
    assert optimize(m, LEVEL.ORT_DISABLE_ALL) is m
    assert ops(optimize(m, LEVEL.ORT_ENABLE_BASIC)) == {"Conv": 1, "Mul": 1}
    pm = PassManager(passes_for_level(LEVEL.ORT_ENABLE_EXTENDED))
    opt = onnx.ModelProto()
    opt.CopyFrom(m)
    pm.run(opt)
    # Identity elimination enables the Mul fusion; a last iteration changes nothing.
    assert ops(opt) == {"Conv": 1}
    assert {name for _, name in pm.applied} >= {"identity_elimination", "conv_add_mul_fusion"}
    assert max(it for it, _ in pm.applied) < pm.max_iterations - 1


class _Spy(IdentityElimination):
    """Identity elimination that records each time the manager runs it."""

    requires = frozenset({"Identity"})

    def __init__(self) -> None:
        self.runs = 0

    def run(self, ctx):
        self.runs += 1
        return super().run(ctx)


def test_manager_skips_a_pass_whose_operators_are_missing():
    x = helper.make_tensor_value_info("X", F, [2, 3])
    y = helper.make_tensor_value_info("Y", F, [2, 3])
    without = make_model([helper.make_node("Relu", ["X"], ["Y"])], [x], [y])
    spy = _Spy()
    PassManager([spy, DCE]).run(without)
    assert spy.runs == 0
    with_identity = make_model(
        [helper.make_node("Identity", ["X"], ["i"]), helper.make_node("Relu", ["i"], ["Y"])],
        [x],
        [y],
    )
    spy = _Spy()
    pm = PassManager([spy, DCE])
    pm.run(with_identity)
    # Run once and remove the Identity; the confirming round skips it (no Identity left).
    assert spy.runs == 1 and ops(with_identity) == {"Relu": 1}
    assert [name for _, name in pm.applied] == ["identity_elimination"]
    # The level pipelines declare what their fusions anchor on.
    assert all(isinstance(p.requires, frozenset) for p in passes_for_level(LEVEL.ORT_ENABLE_ALL))


def test_shape_arithmetic_chain_folds_in_one_round():
    # Shape -> Gather -> Unsqueeze -> Concat -> Reshape: shape folding takes the Gather of a
    # static dimension, constant folding the rest of the chain in the same round.
    x = helper.make_tensor_value_info("X", F, [2, 3, 4])
    y = helper.make_tensor_value_info("Y", F, [2, 12])
    nodes = [
        helper.make_node("Shape", ["X"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["d0"], axis=0),
        helper.make_node("Unsqueeze", ["d0", "axes"], ["d0u"]),
        helper.make_node("Concat", ["d0u", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["X", "target"], ["Y"]),
    ]
    inits = [
        init("zero", np.array(0, np.int64)),
        init("axes", np.array([0], np.int64)),
        init("minus1", np.array([-1], np.int64)),
    ]
    m = make_model(nodes, [x], [y], inits)
    pm = PassManager(passes_for_level(LEVEL.ORT_ENABLE_BASIC))
    opt = onnx.ModelProto()
    opt.CopyFrom(m)
    pm.run(opt)
    assert ops(opt) == {"Reshape": 1}
    assert {it for it, _ in pm.applied} == {0}, pm.applied
    feeds = random_feeds(m)
    np.testing.assert_array_equal(run(opt, feeds)[0], run(m, feeds)[0])


def test_session_writes_optimized_model(tmp_path):
    m = _conv_model(
        [helper.make_node("Mul", ["c", "k"], ["Y"])], [init("k", np.ones((4, 1, 1), np.float32))]
    )
    so = onnxpy.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    feeds = random_feeds(m)
    got = onnxpy.InferenceSession(m, so).run(None, feeds)[0]
    assert ops(m) == {"Conv": 1, "Mul": 1}  # the caller's model is untouched
    assert ops(onnx.load(so.optimized_model_filepath)) == {"Conv": 1}
    np.testing.assert_allclose(got, run(m, feeds)[0], rtol=1e-5, atol=1e-5)


# -- whole models ------------------------------------------------------------------------------
def _zoo(name):
    pytest.importorskip("torch", reason="the torch-exported models need the dev extra")
    from benchmarks.zoo import build, inputs_for

    return str(build(name)), inputs_for(name, batch=1, seed=2)


def _session(path, level, **kw):
    so = onnxpy.SessionOptions()
    so.graph_optimization_level = level
    for k, v in kw.items():
        setattr(so, k, v)
    return onnxpy.InferenceSession(path, so)


def _onnxruntime_run(path, feeds):
    """onnxruntime's outputs for the model at ``path``, run as it is (no optimizations)."""
    ort = pytest.importorskip("onnxruntime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("name", ["resnet50", "bert_base"])
def test_zoo_model_optimized_outputs_match(name, tmp_path):
    path, feeds = _zoo(name)
    expected = _session(path, LEVEL.ORT_DISABLE_ALL).run(None, feeds)
    opt_path = str(tmp_path / "opt.onnx")
    actual = _session(path, LEVEL.ORT_ENABLE_ALL, optimized_model_filepath=opt_path).run(
        None, feeds
    )
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4)
    opt = onnx.load(opt_path)
    onnx.checker.check_model(opt)
    # Level ALL may use onnxruntime's fused contrib ops, and onnxruntime must run them alike.
    assert all(n.domain in ("", "ai.onnx", "com.microsoft") for n in opt.graph.node)
    for a, e in zip(_onnxruntime_run(opt_path, feeds), expected):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["resnet50", "bert_base"])
def test_onnxruntime_loads_basic_optimized_model(name, tmp_path):
    path, feeds = _zoo(name)
    opt_path = str(tmp_path / "basic.onnx")
    expected = _session(path, LEVEL.ORT_ENABLE_BASIC, optimized_model_filepath=opt_path).run(
        None, feeds
    )
    for a, e in zip(_onnxruntime_run(opt_path, feeds), expected):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4)
