"""What ``import onnxpy`` and a small session load: start-up is part of the product.

Each check runs in a fresh interpreter, since this process has imported everything already.
The modules named here were measured to cost milliseconds each and are needed by none of
these models (see docs/benchmarks/issue18-before-after.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import onnx
from onnx import TensorProto, helper

from tests.kernels import single_node

_NOT_AT_IMPORT = [
    "logging",  # imported when a message can be shown (runtime/logs.py)
    "concurrent.futures",
    "hashlib",
    "numpy.ma",
    "numpy.polynomial",
    "onnxpy.runtime.ortvalue",
    "onnxpy.runtime.devices",
    "onnxpy.runtime.iobinding",
    "onnxpy.runtime.sparse",
    "onnxpy.runtime.lora",
    "onnxpy.passes.common",
    "onnxpy.kernels.ai_onnx.elementwise",
]


def _fresh(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _forest(path) -> None:
    """One tree of two leaves (x0 <= 0.5): a TreeEnsembleClassifier as skl2onnx writes it."""
    node = helper.make_node(
        "TreeEnsembleClassifier",
        ["X"],
        ["label", "probabilities"],
        domain="ai.onnx.ml",
        classlabels_int64s=[0, 1],
        nodes_treeids=[0, 0, 0],
        nodes_nodeids=[0, 1, 2],
        nodes_featureids=[0, 0, 0],
        nodes_values=[0.5, 0.0, 0.0],
        nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"],
        nodes_truenodeids=[1, 0, 0],
        nodes_falsenodeids=[2, 0, 0],
        class_treeids=[0, 0],
        class_nodeids=[1, 2],
        class_ids=[0, 1],
        class_weights=[1.0, 1.0],
    )
    model = single_node.graph_model(
        [node],
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
        {"": 17, "ai.onnx.ml": 3},
        ir_version=8,
    )
    onnx.save(model, path)


def test_import_onnxpy_loads_no_side_api_and_no_kernel_family():
    found = _fresh(
        f"""
        import json, sys
        import onnxpy
        print(json.dumps([m for m in {_NOT_AT_IMPORT!r} if m in sys.modules]))
        """
    )
    assert found == []
    # ...while the names stay importable, on first access
    found = _fresh(
        """
        import json, onnxpy
        print(json.dumps([onnxpy.OrtValue.__name__, onnxpy.IOBinding.__name__,
                          onnxpy.OrtDevice.__name__, onnxpy.SparseTensor.__name__]))
        """
    )
    assert found == ["OrtValue", "IOBinding", "OrtDevice", "SparseTensor"]


def test_a_forest_session_loads_neither_numpy_ma_nor_logging(tmp_path):
    path = tmp_path / "forest.onnx"
    _forest(path)
    found = _fresh(
        f"""
        import json, sys
        import numpy as np
        import onnxpy
        sess = onnxpy.InferenceSession({str(path)!r})
        label, proba = sess.run(None, {{"X": np.array([[0.2, 0.0], [0.9, 0.0]], np.float32)}})
        heavy = [m for m in ("numpy.ma", "numpy.polynomial", "logging", "hashlib")
                 if m in sys.modules]
        print(json.dumps([label.tolist(), proba.tolist(), heavy]))
        """
    )
    assert found == [[0, 1], [[1.0, 0.0], [0.0, 1.0]], []]


def test_info_messages_reach_a_logging_configuration(tmp_path):
    """Messages are dropped only while nobody has imported logging; configured, they arrive."""
    path = tmp_path / "forest.onnx"
    _forest(path)
    found = _fresh(
        f"""
        import json, logging
        records = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record.getMessage())

        logging.getLogger("onnxpy").addHandler(Keep())
        logging.getLogger("onnxpy").setLevel(logging.INFO)
        import onnxpy
        onnxpy.InferenceSession({str(path)!r})
        print(json.dumps(records))
        """
    )
    assert any(m.startswith("Initializing session") for m in found)
