"""`onnxpy optimize`, `extract` and `upgrade` end to end; outputs checked with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx

import onnxpy
from tests.tools.conftest import image_batch, reference_run


def test_optimize_basic_is_loadable_by_onnxruntime(cli, cnn_path, tmp_path):
    out = tmp_path / "basic.onnx"
    res = cli("optimize", cnn_path, "-o", out, "--level", "basic")
    assert res.code == 0 and "wrote" in res.out, res
    x = image_batch(3)
    np.testing.assert_allclose(
        reference_run(out, {"image": x})[0], reference_run(cnn_path, {"image": x})[0], rtol=1e-5,
        atol=1e-5,
    )  # fmt: skip


def test_optimize_extended_folds_batchnorm_and_fixes_shapes(cli, cnn_path, tmp_path):
    out = tmp_path / "ext.onnx"
    res = cli("optimize", cnn_path, "-o", out, "--level", "extended",
              "--fix-shape", "image=2,3,16,16")  # fmt: skip
    assert res.code == 0, res
    row = next(ln.split() for ln in res.out.splitlines() if ln.startswith("BatchNormalization"))
    assert row == ["BatchNormalization", "2", "0", "-2"]
    model = onnx.load(out)
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 16, 16]
    x = image_batch(2)
    got = onnxpy.InferenceSession(str(out)).run(None, {"image": x})[0]
    np.testing.assert_allclose(got, reference_run(cnn_path, {"image": x})[0], rtol=1e-4, atol=1e-5)
    bad = cli("optimize", cnn_path, "-o", out, "--fix-shape", "image=2,3,17,16")
    assert bad.code == 3 and "fixed" in bad.err


def test_extract_subgraph_between_values(cli, cnn_path, tmp_path):
    out = tmp_path / "block.onnx"
    res = cli("extract", cnn_path, "-o", out, "--inputs", "p1", "--outputs", "r2")
    assert res.code == 0, res
    sub = onnx.load(out)
    assert [n.name for n in sub.graph.node] == ["conv2", "bn2", "relu2"]
    x = image_batch(2)
    full = onnx.load(cnn_path)
    for name in ("p1", "r2"):
        full.graph.output.append(onnx.helper.make_tensor_value_info(name, 1, None))
    onnx.save(full, tmp_path / "exposed.onnx")
    p1, r2 = reference_run(tmp_path / "exposed.onnx", {"image": x}, ["p1", "r2"])
    got = onnxpy.InferenceSession(str(out)).run(None, {"p1": p1})[0]
    np.testing.assert_allclose(got, r2, rtol=1e-5, atol=1e-5)
    missing = cli("extract", cnn_path, "-o", out, "--inputs", "p1", "--outputs", "nope")
    assert missing.code == 3 and "nope" in missing.err


def test_upgrade_opset(cli, cnn_path, tmp_path):
    out = tmp_path / "op21.onnx"
    res = cli("upgrade", cnn_path, "-o", out, "--opset", "21")
    assert res.code == 0, res
    model = onnx.load(out)
    assert {i.domain: i.version for i in model.opset_import}[""] == 21
    x = image_batch(2)
    np.testing.assert_allclose(
        onnxpy.InferenceSession(str(out)).run(None, {"image": x})[0],
        reference_run(cnn_path, {"image": x})[0], rtol=1e-5, atol=1e-5,
    )  # fmt: skip
    assert cli("upgrade", cnn_path, "-o", out, "--opset", "99").code == 3
