"""A real client: Hugging Face optimum's ORTModel classes on onnxpy, against PyTorch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("optimum.onnxruntime", reason="optimum-onnx is a dev dependency")

CLIENT = os.path.join(os.path.dirname(__file__), "optimum_client.py")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("optimum")
    # A fresh process: onnxpy stands in for onnxruntime only there, from before optimum's import.
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false"
    )
    proc = subprocess.run(
        [sys.executable, CLIENT, str(folder)], capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


@pytest.mark.slow
def test_optimum_runs_on_onnxpy_sessions(results):
    assert results["onnxruntime_is_onnxpy"]
    assert results["session_type"] == "onnxpy.runtime.session.InferenceSession"
    assert results["binding_type"] == "onnxpy.runtime.iobinding"


@pytest.mark.slow
def test_sequence_classification_matches_pytorch(results):
    assert results["logits_max_diff"] < 1e-5
    assert results["io_binding_output_is_torch"]
    assert results["io_binding_logits_max_diff"] < 1e-5
    ours, theirs = results["pipeline"], results["pipeline_torch"]
    assert [[d["label"] for d in row] for row in ours] == [
        [d["label"] for d in row] for row in theirs
    ]
    for row_ours, row_theirs in zip(ours, theirs):
        for a, b in zip(row_ours, row_theirs):
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)


@pytest.mark.slow
def test_feature_extraction_matches_pytorch(results):
    assert results["hidden_max_diff"] < 1e-5
    assert results["feature_pipeline_max_diff"] < 1e-5
