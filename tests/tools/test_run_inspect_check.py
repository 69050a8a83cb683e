"""`onnxpy run`, `inspect` and `check` end to end through the CLI on real small models."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.tools.conftest import image_batch, reference_run
from tests.tools.models import broken_model, wide_model


def test_run_any_intermediate_value_matches_onnxruntime_and_golden_files(cli, cnn_path, tmp_path):
    x = image_batch()
    np.save(tmp_path / "x.npy", x)
    golden = ["--save-inputs", tmp_path / "in.npz", "--save-outputs", tmp_path / "out.npz"]
    res = cli(
        "run", cnn_path, "-i", f"image={tmp_path / 'x.npy'}", "--outputs", "r1,logits", *golden
    )
    assert res.code == 0, res
    assert "r1: float32 shape=[2, 8, 16, 16]" in res.out
    saved = np.load(tmp_path / "out.npz")
    assert sorted(saved.files) == ["logits", "r1"]
    # onnxruntime as oracle: expose r1 in a copy of the model
    model = onnx.load(cnn_path)
    model.graph.output.append(helper.make_tensor_value_info("r1", TensorProto.FLOAT, None))
    onnx.save(model, tmp_path / "exposed.onnx")
    r1, logits = reference_run(tmp_path / "exposed.onnx", {"image": x}, ["r1", "logits"])
    np.testing.assert_allclose(saved["r1"], r1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(saved["logits"], logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.load(tmp_path / "in.npz")["image"], x)
    # the golden files check out later, and catch a changed model
    ok = cli("compare", cnn_path, "--load-outputs", tmp_path / "out.npz", "-i", tmp_path / "in.npz")
    assert ok.code == 0 and "every compared value agrees" in ok.out, ok
    from tests.tools.models import perturbed

    onnx.save(perturbed(cnn_path, "fc.w", 1.1), tmp_path / "changed.onnx")
    bad = cli("compare", tmp_path / "changed.onnx", "--load-outputs", tmp_path / "out.npz",
              "-i", tmp_path / "in.npz")  # fmt: skip
    assert bad.code == 1 and "first divergence: node 'logits'" in bad.out, bad


def test_run_random_shapes_and_unknown_outputs(cli, cnn_path):
    res = cli("run", cnn_path, "-i", "image=random:3,3,16,16")
    assert res.code == 0 and "logits: float32 shape=[3, 10]" in res.out, res
    res = cli("run", cnn_path, "--outputs", "no_such_value")
    assert res.code == 3 and "no_such_value" in res.err and "\n" not in res.err.strip()


def test_check_nan_names_the_first_node(cli, tmp_path):
    # x -> Abs -> Neg -> Log (NaN for negative) -> Sqrt -> y: Log is the first with NaN
    nodes = [helper.make_node("Abs", ["x"], ["a"], name="abs"),
             helper.make_node("Neg", ["a"], ["n"], name="neg"),
             helper.make_node("Log", ["n"], ["l"], name="log"),
             helper.make_node("Sqrt", ["l"], ["y"], name="sqrt")]  # fmt: skip
    graph = helper.make_graph(
        nodes, "nan", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "nan.onnx")
    np.save(tmp_path / "x.npy", np.array([1.0, 2.0, 3.0, 4.0], np.float32))
    res = cli("run", tmp_path / "nan.onnx", "-i", f"x={tmp_path / 'x.npy'}", "--check-nan")
    assert res.code == 1, res
    assert "first NaN/Inf: node 'log' (Log)" in res.out and "nan=4" in res.out
    np.save(tmp_path / "z.npy", np.zeros(4, np.float32))  # log(-0) = -inf already
    res = cli("run", tmp_path / "nan.onnx", "-i", f"x={tmp_path / 'z.npy'}", "--check-nan")
    assert "node 'log' (Log)" in res.out and "inf=4" in res.out


def test_inspect_counts_parameters_ops_and_flops(cli, cnn_path):
    res = cli("inspect", cnn_path, "--json", "--dim", "batch=2")
    assert res.code == 0, res
    info = json.loads(res.out)
    model = onnx.load(cnn_path)
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert info["parameters"] == params
    assert info["parameter_bytes"] == 4 * params
    assert {k: v["count"] for k, v in info["ops"].items()} == dict(
        Counter(n.op_type for n in model.graph.node)
    )
    # hand-worked: conv1 2*(2*8*16*16)*(3*3*3) + bias, conv2 2*(2*16*8*8)*(8*3*3) + bias
    conv1 = 2 * (2 * 8 * 16 * 16) * 27 + 2 * 8 * 16 * 16
    conv2 = 2 * (2 * 16 * 8 * 8) * 72 + 2 * 16 * 8 * 8
    assert info["ops"]["Conv"]["flops"] == conv1 + conv2
    assert info["ops"]["Gemm"]["flops"] == 2 * 2 * 10 * 16 + 2 * 10
    assert info["ops"]["Conv"]["weights"] == 8 * 27 + 8 + 16 * 72 + 16
    assert info["inputs"] == [
        {"name": "image", "type": "tensor(float)", "shape": ["batch", 3, 16, 16]}
    ]
    assert info["ir_version"] == 8 and info["opsets"] == {"": 17}
    assert info["missing_ops"] == []
    text = cli("inspect", cnn_path)
    assert "ops onnxpy lacks: none" in text.out and "parameters: " in text.out


def test_inspect_lists_ops_onnxpy_lacks_and_external_data(cli, tmp_path, cnn_path):
    model = onnx.load(cnn_path)
    model.graph.node.append(helper.make_node("Frobnicate", ["logits"], ["z"], domain="my.ops"))
    model.opset_import.append(helper.make_opsetid("my.ops", 1))
    onnx.save(model, tmp_path / "ext.onnx", save_as_external_data=True, location="w.bin",
              size_threshold=256)  # fmt: skip
    info = json.loads(cli("inspect", tmp_path / "ext.onnx", "--json").out)
    assert info["missing_ops"] == ["my.ops::Frobnicate"]
    [(where, size)] = info["external_data"].items()
    assert where.endswith("w.bin") and 0 < size <= (tmp_path / "w.bin").stat().st_size


def test_check_lists_every_bad_node(cli, tmp_path, cnn_path):
    assert cli("check", cnn_path).code == 0
    onnx.save(broken_model(), tmp_path / "broken.onnx")
    res = cli("check", tmp_path / "broken.onnx", "--json")
    assert res.code == 1, res
    problems = json.loads(res.out)["problems"]
    by_node = {(p["check"], p["node"]) for p in problems}
    assert ("checker", "bad_relu") in by_node  # unknown attribute
    assert ("shapes", "bad_matmul") in by_node  # [2,3] x [4,5]
    text = cli("check", tmp_path / "broken.onnx").out
    assert "node 'bad_relu' (Relu)" in text and "node 'bad_matmul' (MatMul)" in text


def test_check_reports_onnxpy_load_refusal(cli, tmp_path, cnn_path):
    model = onnx.load(cnn_path)  # valid for onnx (unknown domains are not checked) ...
    model.graph.node.append(helper.make_node("Frobnicate", ["logits"], ["z"], name="frob",
                                             domain="my.ops"))  # fmt: skip
    model.opset_import.append(helper.make_opsetid("my.ops", 1))
    onnx.save(model, tmp_path / "custom.onnx")
    res = cli("check", tmp_path / "custom.onnx", "--json")
    problems = json.loads(res.out)["problems"]
    assert res.code == 1
    onnxpy_problems = [p for p in problems if p["check"] == "onnxpy"]  # ... but not for onnxpy
    assert onnxpy_problems and "Frobnicate" in onnxpy_problems[0]["message"]


def test_check_lists_every_onnxpy_rule_broken_and_accepts_shapeless_outputs(cli, tmp_path):
    f = TensorProto.FLOAT
    then = helper.make_graph(
        [helper.make_node("Relu", ["X"], ["a"])], "then", [],
        [helper.make_tensor_value_info("a", f, [2])],
    )  # fmt: skip
    other = helper.make_graph(
        [helper.make_node("Cast", ["X"], ["b"], to=TensorProto.INT64)], "else", [],
        [helper.make_tensor_value_info("b", TensorProto.INT64, [2])],
    )  # fmt: skip
    nodes = [
        helper.make_node("Relu", ["X"], ["Y"], name="relu"),
        helper.make_node("If", ["F"], ["Z"], name="branch", then_branch=then, else_branch=other),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("X", f, [2]), helper.make_tensor_value_info("F", f, [])],
        [helper.make_tensor_value_info("Y", TensorProto.INT64, [2]),
         helper.make_tensor_value_info("Z", f, [2])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "bad.onnx")
    res = cli("check", tmp_path / "bad.onnx", "--json")
    assert res.code == 1
    ours = [p for p in json.loads(res.out)["problems"] if p["check"] == "onnxpy"]
    assert {p["node"] for p in ours} >= {"branch"}
    messages = " | ".join(p["message"] for p in ours)
    assert "condition 'F'" in messages and "else_branch" in messages and "'Y'" in messages
    # An output declared without a shape is valid (the IR makes shapes optional).
    graph = helper.make_graph(
        [nodes[0]], "g", [helper.make_tensor_value_info("X", f, [2])],
        [helper.make_tensor_value_info("Y", f, None)],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "shapeless.onnx")
    assert cli("check", tmp_path / "shapeless.onnx").code == 0


@pytest.mark.slow
def test_inspect_and_check_a_2700_node_model(cli):
    path = wide_model(300)
    info = json.loads(cli("inspect", path, "--json").out)
    assert info["nodes"] == 2700 and info["ops"]["MatMul"]["count"] == 300
    assert cli("check", path).code == 0
