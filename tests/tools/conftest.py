"""Fixtures of the toolbox tests: the CLI entry point with captured output, and cached models."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from onnxpy.cli import main


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@pytest.fixture
def cli(capsys):
    """``cli("compare", path, ...)``: run ``onnxpy`` through its entry point."""

    def run(*args) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def cnn_path():
    from tests.tools.models import cnn

    return cnn()


def reference_run(path, feeds, outputs=None):
    """onnxruntime's outputs (the independent oracle)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(outputs, feeds)


def image_batch(n: int = 2, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 16, 16)).astype(np.float32)


def node_names(path) -> list[str]:
    return [n.name for n in onnx.load(str(path)).graph.node]
