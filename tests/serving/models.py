"""Small models and repositories for the server tests, written with onnx.helper, skl2onnx and torch.

Everything is cheap to build (well under a second) except the CNN exported from PyTorch, which is
cached in ``$ONNXPY_CACHE_DIR/serving`` (default ``~/.cache/onnxpy``) and rebuilt when missing.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

V2_TO_ELEM = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BF16": TensorProto.BFLOAT16,
    "BYTES": TensorProto.STRING,
}


def cache_dir() -> Path:
    root = os.environ.get("ONNXPY_CACHE_DIR") or os.path.join(Path.home(), ".cache", "onnxpy")
    d = Path(root) / "serving"
    d.mkdir(parents=True, exist_ok=True)
    return d


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _model(nodes, inputs, outputs, initializers=(), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def add_model(constant: float) -> onnx.ModelProto:
    """y = x + constant, x: FP32 [batch, 4]. Versions differ by their constant."""
    c = numpy_helper.from_array(np.array(constant, dtype=np.float32), "c")
    return _model(
        [helper.make_node("Add", ["x", "c"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [c],
    )


def linear_weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((8, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)


def linear_model(seed: int = 0) -> onnx.ModelProto:
    """y = x @ W + b and rowsum = sum(x, axis=1); x: FP32 [batch, 8]. Row-wise, so batching
    must not change any row's result."""
    w, b = linear_weights(seed)
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    return _model(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
            helper.make_node("ReduceSum", ["x", "axes"], ["rowsum"], keepdims=0),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("rowsum", TensorProto.FLOAT, ["batch"]),
        ],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b"), axes],
    )


def dtypes_model() -> onnx.ModelProto:
    """One Identity per v2 datatype: in_<DT> [batch, 2] -> out_<DT>."""
    nodes, inputs, outputs = [], [], []
    for dt, elem in V2_TO_ELEM.items():
        nodes.append(helper.make_node("Identity", [f"in_{dt}"], [f"out_{dt}"]))
        inputs.append(helper.make_tensor_value_info(f"in_{dt}", elem, ["batch", 2]))
        outputs.append(helper.make_tensor_value_info(f"out_{dt}", elem, ["batch", 2]))
    return _model(nodes, inputs, outputs)


def lookup_model() -> onnx.ModelProto:
    """y = TABLE[i] with TABLE[r] = [2r, 2r + 1] (Gather, i: INT64 [batch]); an index out of range
    passes every declared check and fails in the kernel, inside a batch."""
    table = numpy_helper.from_array(np.arange(20, dtype=np.float32).reshape(10, 2), "TABLE")
    return _model(
        [helper.make_node("Gather", ["TABLE", "i"], ["y"], axis=0)],
        [helper.make_tensor_value_info("i", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [table],
    )


def slow_model(layers: int = 16, width: int = 512) -> onnx.ModelProto:
    """A chain of MatMuls: a request of a few hundred rows takes a noticeable time (drain tests)."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
    nodes, prev = [], "x"
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [prev, "W"], [f"h{i}"]))
        prev = f"h{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        [numpy_helper.from_array(w, "W")],
    )


def iris_models(folder: Path) -> tuple[object, np.ndarray, Path, Path]:
    """A RandomForest on iris converted twice: skl2onnx's default (ZipMap) and zipmap=False."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    clf = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y)
    zipmap = save(to_onnx(clf, x[:1]), folder / "rf_iris.onnx")
    tensor = save(to_onnx(clf, x[:1], options={"zipmap": False}), folder / "rf_iris_tensor.onnx")
    return clf, x, zipmap, tensor


def cnn_model() -> Path:
    """A small image CNN (PyTorch export, opset 17): [batch, 3, 32, 32] -> logits [batch, 10]."""
    path = cache_dir() / "cnn.onnx"
    if path.exists():
        return path
    import warnings

    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()  # fmt: skip
    tmp = path.with_suffix(".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (torch.randn(1, 3, 32, 32),), str(tmp), opset_version=17, input_names=["image"],
            output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )  # fmt: skip
    tmp.replace(path)
    return path


def write_config(folder: Path, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(textwrap.dedent(text))


def iris_repository(root: Path) -> tuple[object, np.ndarray]:
    """rf_iris (ZipMap) and rf_iris_tensor as version 1 of a Triton repository; (clf, x)."""
    clf, x, zipmap, tensor = iris_models(root / "_src")
    (root / "rf_iris" / "1").mkdir(parents=True)
    zipmap.replace(root / "rf_iris" / "1" / "model.onnx")
    (root / "rf_iris_tensor" / "1").mkdir(parents=True)
    tensor.replace(root / "rf_iris_tensor" / "1" / "model.onnx")
    for leftover in (root / "_src").iterdir():
        leftover.unlink()
    (root / "_src").rmdir()
    return clf, x


def triton_repository(root: Path) -> dict[str, object]:
    """The main test repository; returns what tests need to compute expectations."""
    clf, x = iris_repository(root)
    write_config(
        root / "rf_iris_tensor",
        """
        name: "rf_iris_tensor"
        backend: "onnxruntime"
        max_batch_size: 32
        input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]
        output [
          { name: "probabilities" data_type: TYPE_FP32 dims: [ 3 ] label_filename: "labels.txt" }
        ]
        """,
    )
    (root / "rf_iris_tensor" / "labels.txt").write_text("setosa\nversicolor\nvirginica\n")
    for version, constant in ((1, 1.0), (2, 2.0)):
        save(add_model(constant), root / "add" / str(version) / "model.onnx")
    write_config(
        root / "add",
        """
        platform: "onnxruntime_onnx"
        max_batch_size: 0
        version_policy: { all { } }
        # Triton fields outside onnxpy's subset are skipped and logged:
        optimization { execution_accelerators { cpu_execution_accelerator: [ { name: "x" } ] } }
        model_transaction_policy { decoupled: false }
        """,
    )
    save(linear_model(), root / "linear" / "1" / "model.onnx")
    write_config(
        root / "linear",
        """
        max_batch_size: 16
        input [ { name: "x" data_type: TYPE_FP32 dims: [ 8 ] } ]
        dynamic_batching { preferred_batch_size: [ 8, 16 ] max_queue_delay_microseconds: 50000 }
        instance_group [ { count: 1 kind: KIND_CPU } ]
        model_warmup [ {
          name: "zeros" batch_size: 2
          inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 8 ] zero_data: true } }
        } ]
        """,
    )
    save(lookup_model(), root / "lookup" / "1" / "model.onnx")
    write_config(
        root / "lookup",
        """
        max_batch_size: 8
        dynamic_batching { max_queue_delay_microseconds: 5000000 }
        """,
    )
    save(slow_model(), root / "slowq" / "1" / "model.onnx")
    write_config(
        root / "slowq",
        """
        max_batch_size: 256
        dynamic_batching { default_queue_policy { max_queue_size: 1 } }
        """,
    )
    save(dtypes_model(), root / "dtypes" / "1" / "model.onnx")
    cnn = cnn_model()
    (root / "cnn" / "1").mkdir(parents=True)
    (root / "cnn" / "1" / "model.onnx").write_bytes(cnn.read_bytes())
    return {"clf": clf, "x": x, "cnn": root / "cnn" / "1" / "model.onnx"}
