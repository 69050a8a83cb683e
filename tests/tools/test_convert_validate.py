"""`onnxpy convert` (scikit-learn, PyTorch, transformers) and `onnxpy validate`, end to end.

The oracle is each framework itself, run here on fresh inputs independently of the tool's own
validation (and onnxruntime loading the converted file)."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import onnx
import pytest

import onnxpy
from tests.tools.models import iris_forest, mlp_module_dir, tiny_bert_dir


def _dims(vi: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def test_convert_sklearn_needs_trust_and_matches_scikit_learn(cli, tmp_path):
    pkl, holdout = iris_forest()
    out = tmp_path / "forest.onnx"
    refused = cli("convert", "sklearn", pkl, "-o", out)
    assert refused.code == 3 and "--trust-pickle" in refused.err and "runs any code" in refused.err
    assert not out.exists()
    res = cli("convert", "sklearn", pkl, "-o", out, "--trust-pickle", "-i", f"X={holdout}")
    assert res.code == 0, res
    assert "label" in res.out and "probabilities" in res.out and "result: PASS" in res.out
    model = onnx.load(out)
    assert [v.name for v in model.graph.input] == ["X"]
    assert [v.name for v in model.graph.output] == ["label", "probabilities"]
    assert _dims(model.graph.input[0]) == ["batch", 4]
    with open(pkl, "rb") as f:
        clf = pickle.load(f)
    x = np.load(holdout)
    label, proba = onnxpy.InferenceSession(str(out)).run(None, {"X": x})
    np.testing.assert_array_equal(label, clf.predict(x))
    np.testing.assert_allclose(proba, clf.predict_proba(x), atol=1e-6)


def test_convert_sklearn_zipmap_and_names(cli, tmp_path):
    pkl, holdout = iris_forest()
    out = tmp_path / "zip.onnx"
    res = cli("convert", "sklearn", pkl, "-o", out, "--trust-pickle", "--zipmap",
              "--input-name", "features", "--output-names", "species,scores")  # fmt: skip
    assert res.code == 0 and "result: PASS" in res.out, res
    model = onnx.load(out)
    assert [v.name for v in model.graph.output] == ["species", "scores"]
    assert any(n.op_type == "ZipMap" for n in model.graph.node)
    scores = onnxpy.InferenceSession(str(out)).run(["scores"], {"features": np.load(holdout)})[0]
    assert isinstance(scores, list) and set(scores[0]) == {0, 1, 2}


@pytest.mark.slow
def test_convert_torch_mlp_with_names_and_dynamic_batch(cli, tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(mlp_module_dir())
    out = tmp_path / "mlp.onnx"
    res = cli("convert", "torch", "tools_test_models:make_mlp", "--shape", "1,20",
              "--input-names", "x", "--output-names", "y", "-o", out)  # fmt: skip
    assert res.code == 0 and "result: PASS" in res.out, res
    model = onnx.load(out)
    assert _dims(model.graph.input[0]) == ["batch", 20]
    assert _dims(model.graph.output[0]) == ["batch", 3]
    sys.path.insert(0, str(mlp_module_dir()))
    try:
        import tools_test_models
    finally:
        sys.path.remove(str(mlp_module_dir()))
    net = tools_test_models.make_mlp().eval()
    x = np.random.default_rng(5).standard_normal((7, 20)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    got = onnxpy.InferenceSession(str(out)).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # validate on its own: passes for the export, fails for a tampered copy
    ok = cli("validate", out, "--source", "torch:tools_test_models:make_mlp", "--batch", "3")
    assert ok.code == 0 and "PASS" in ok.out, ok
    for t in model.graph.initializer:
        if t.dims == [3] or list(t.dims) == [3]:
            arr = onnx.numpy_helper.to_array(t) + 0.5
            t.CopyFrom(onnx.numpy_helper.from_array(arr, t.name))
    onnx.save(model, tmp_path / "tampered.onnx")
    bad = cli(
        "validate", tmp_path / "tampered.onnx", "--source", "torch:tools_test_models:make_mlp"
    )
    assert bad.code == 1 and "FAIL" in bad.out, bad


@pytest.mark.slow
def test_convert_torch_cnn_extra_dynamic_axis(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(mlp_module_dir())
    out = tmp_path / "cnn.onnx"
    res = cli("convert", "torch", "tools_test_models:make_cnn", "--shape", "1,3,16,16",
              "--input-names", "image", "--output-names", "logits", "-o", out)  # fmt: skip
    assert res.code == 0 and "result: PASS" in res.out, res
    assert _dims(onnx.load(out).graph.input[0]) == ["batch", 3, 16, 16]
    res = cli("convert", "torch", "tools_test_models:nope", "--shape", "1,3", "-o", out)
    assert res.code == 3 and "has no attribute 'nope'" in res.err


@pytest.mark.slow
@pytest.mark.parametrize("task", ["feature-extraction", "sequence-classification"])
def test_convert_transformers_from_a_local_directory(cli, tmp_path, task):
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    folder = tiny_bert_dir()
    out = tmp_path / "bert.onnx"
    res = cli("convert", "transformers", folder, "--task", task, "-o", out)
    assert res.code == 0 and "result: PASS" in res.out, res
    model = onnx.load(out)
    names = [v.name for v in model.graph.input]
    assert names == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(_dims(v) == ["batch", "sequence"] for v in model.graph.input)
    # a sequence length the export never saw, against transformers itself
    rng = np.random.default_rng(3)
    feeds = {"input_ids": rng.integers(0, 96, (3, 9)), "attention_mask": np.ones((3, 9), np.int64),
             "token_type_ids": np.zeros((3, 9), np.int64)}  # fmt: skip
    feeds["attention_mask"][0, 6:] = 0
    auto = AutoModel if task == "feature-extraction" else AutoModelForSequenceClassification
    hf = auto.from_pretrained(folder, local_files_only=True, attn_implementation="eager").eval()
    with torch.no_grad():
        ref = hf(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    key = "last_hidden_state" if task == "feature-extraction" else "logits"
    got = onnxpy.InferenceSession(str(out)).run([key], feeds)[0]
    np.testing.assert_allclose(got, ref[key].numpy(), rtol=1e-4, atol=1e-4)


def test_missing_extra_names_it(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as if not installed
    res = cli("convert", "transformers", tmp_path, "-o", tmp_path / "x.onnx")
    assert res.code == 4, res
    assert 'pip install "onnxpy[convert]"' in res.err


def test_validate_sklearn_source_spec(cli, tmp_path):
    pkl, holdout = iris_forest()
    out = tmp_path / "forest.onnx"
    assert cli("convert", "sklearn", pkl, "-o", out, "--trust-pickle", "--no-validate").code == 0
    res = cli("validate", out, "--source", f"sklearn:{pkl}", "--trust-pickle", "-i",
              f"X={holdout}", "--json")  # fmt: skip
    assert res.code == 0, res
    import json

    report = json.loads(res.out)
    assert report["ok"] and [o["name"] for o in report["outputs"]] == ["label", "probabilities"]
    assert report["batch"] == 45
    assert cli("validate", out, "--source", f"sklearn:{pkl}").code == 3  # no --trust-pickle
