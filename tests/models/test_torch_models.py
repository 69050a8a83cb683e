"""Real architectures exported from PyTorch (random weights, opset 17) agree with onnxruntime.

The models are built by ``benchmarks/zoo.py`` into a cache folder once. onnxruntime is the
oracle here: both runtimes get the same seeded inputs and must agree within 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the torch-exported models need the dev extra")
ort = pytest.importorskip("onnxruntime")

import onnxpy  # noqa: E402
from benchmarks.zoo import build, inputs_for  # noqa: E402


def _compare(name: str, batch: int = 1) -> None:
    path = str(build(name))
    feeds = inputs_for(name, batch=batch, seed=1)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    expected = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, feeds)
    sess = onnxpy.InferenceSession(path)
    actual = sess.run(None, feeds)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4)


def test_mlp_matches_onnxruntime():
    _compare("mlp", batch=64)


def test_resnet50_matches_onnxruntime():
    _compare("resnet50")


def test_bert_base_matches_onnxruntime():
    _compare("bert_base")
