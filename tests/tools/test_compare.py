"""`onnxpy compare`: node by node against onnxruntime, onnx.reference and a second model; the
first diverging node of a deliberately perturbed model is named."""

from __future__ import annotations

import json

import onnx
import pytest

from tests.tools.models import perturbed, tiny_bert_dir


def test_cnn_agrees_with_onnxruntime_node_by_node(cli, cnn_path):
    res = cli("compare", cnn_path, "--against", "onnxruntime", "--batch", "2", "--json")
    assert res.code == 0, res
    report = json.loads(res.out)
    model = onnx.load(cnn_path)
    assert [n["node"] for n in report["nodes"]] == [n.name for n in model.graph.node]
    assert report["compared_values"] == 10 and report["first_divergence"] is None
    assert all(n["ok"] and n["max_abs"] < 1e-4 for n in report["nodes"])


def test_cnn_agrees_with_the_reference_evaluator_in_small_chunks(cli, cnn_path):
    res = cli("compare", cnn_path, "--against", "reference", "--chunk", "3", "--json")
    assert res.code == 0, res
    report = json.loads(res.out)
    assert report["chunks"] == 4 and report["compared_values"] == 10


def test_perturbed_node_is_named_first(cli, cnn_path, tmp_path):
    onnx.save(perturbed(cnn_path, "conv2.w", 1.05), tmp_path / "perturbed.onnx")
    res = cli("compare", cnn_path, "--against", tmp_path / "perturbed.onnx", "--chunk", "2")
    assert res.code == 1, res
    assert "first divergence: node 'conv2' (Conv)" in res.out
    # its inputs' statistics: the pooled activations and conv2's weights and bias
    tail = res.out.split("its inputs:")[1]
    assert "p1: float32[1, 8, 8, 8]" in tail and "conv2.w: float32[16, 8, 3, 3]" in tail
    report = json.loads(cli("compare", cnn_path, "--against", tmp_path / "perturbed.onnx",
                            "--json").out)  # fmt: skip
    ok = {n["node"]: n["ok"] for n in report["nodes"]}
    assert ok["conv1"] and ok["bn1"] and ok["relu1"] and ok["pool1"]
    assert not ok["conv2"] and not ok["fc"]


@pytest.mark.slow
def test_perturbed_transformer_node_against_onnxruntime_and_model(cli, tmp_path):
    folder = tiny_bert_dir()
    path = tmp_path / "bert.onnx"
    assert cli("convert", "transformers", folder, "--task", "sequence-classification",
               "-o", path, "--no-validate").code == 0  # fmt: skip
    import numpy as np
    from transformers import AutoConfig

    from onnxpy.convert.transformers import transformer_feeds

    names = ["input_ids", "attention_mask", "token_type_ids"]
    np.savez(
        tmp_path / "feeds.npz",
        **transformer_feeds(AutoConfig.from_pretrained(folder), names, seq=12),
    )
    feeds = ["-i", tmp_path / "feeds.npz"]
    res = cli("compare", path, "--against", "onnxruntime", "--chunk", "16", "--json", *feeds)
    report = json.loads(res.out)
    assert res.code == 0 and report["chunks"] > 5, res
    model = onnx.load(path)
    # the value projection of layer 1: one MatMul whose weight is an initializer
    target = next(
        n
        for n in model.graph.node
        if n.op_type == "MatMul" and "layer.1/attention/self/value" in n.name
    )
    weight = next(i for i in target.input if i in {t.name for t in model.graph.initializer})
    onnx.save(perturbed(path, weight, 1.02), tmp_path / "bert_perturbed.onnx")
    res = cli(
        "compare", path, "--against", tmp_path / "bert_perturbed.onnx", "--chunk", "16", *feeds
    )
    assert res.code == 1
    assert f"first divergence: node '{target.name}' (MatMul)" in res.out, res


def test_unknown_against_is_one_line_error(cli, cnn_path):
    res = cli("compare", cnn_path, "--against", "tensorflow")
    assert res.code == 3 and "onnxruntime, reference or an existing model file" in res.err
