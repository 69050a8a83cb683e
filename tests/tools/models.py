"""Small real models for the toolbox tests, built once into the cache folder (outside git).

* ``cnn()``: a Conv+BatchNormalization CNN written with onnx.helper (seeded weights), so that the
  BatchNormalization nodes survive for ``optimize`` to fold (torch's exporter folds them itself);
* ``iris_forest()``: a RandomForestClassifier on iris, pickled, with its held-out rows;
* ``tiny_bert_dir()``: a 2-layer BERT for sequence classification built from a config (no
  download) and saved as a local transformers directory;
* ``mlp_module_dir()``: a folder holding ``tools_test_models.py`` with torch factories;
* ``wide_model(blocks)``: a synthetic residual network of 9 nodes per block (2,700 nodes at 300).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["cache", "cnn", "perturbed", "iris_forest", "tiny_bert_dir", "mlp_module_dir",
           "wide_model", "broken_model"]  # fmt: skip

VERSION = "1"


def cache() -> Path:
    root = os.environ.get("ONNXPY_CACHE_DIR") or os.path.join(Path.home(), ".cache", "onnxpy")
    d = Path(root) / f"tools-{VERSION}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _atomic(path: Path, write) -> Path:
    if not path.exists():
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        write(tmp)
        os.replace(tmp, path)
    return path


def _init(name: str, array: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array), name)


def _cnn_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = []

    def conv_bn(i: int, cin: int, cout: int, x: str) -> tuple[list, str]:
        w = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32) * 0.3
        inits.extend([
            _init(f"conv{i}.w", w),
            _init(f"conv{i}.b", rng.standard_normal(cout).astype(np.float32) * 0.1),
            _init(f"bn{i}.scale", rng.uniform(0.5, 1.5, cout).astype(np.float32)),
            _init(f"bn{i}.bias", rng.standard_normal(cout).astype(np.float32) * 0.1),
            _init(f"bn{i}.mean", rng.standard_normal(cout).astype(np.float32) * 0.1),
            _init(f"bn{i}.var", rng.uniform(0.5, 1.5, cout).astype(np.float32)),
        ])  # fmt: skip
        nodes = [
            helper.make_node("Conv", [x, f"conv{i}.w", f"conv{i}.b"], [f"c{i}"], name=f"conv{i}",
                             kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("BatchNormalization",
                             [f"c{i}", f"bn{i}.scale", f"bn{i}.bias", f"bn{i}.mean", f"bn{i}.var"],
                             [f"b{i}"], name=f"bn{i}", epsilon=1e-5),
            helper.make_node("Relu", [f"b{i}"], [f"r{i}"], name=f"relu{i}"),
        ]  # fmt: skip
        return nodes, f"r{i}"

    n1, x = conv_bn(1, 3, 8, "image")
    pool = helper.make_node(
        "MaxPool", [x], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]
    )
    n2, x = conv_bn(2, 8, 16, "p1")
    head = [
        helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
    ]
    inits += [
        _init("fc.w", rng.standard_normal((10, 16)).astype(np.float32) * 0.3),
        _init("fc.b", rng.standard_normal(10).astype(np.float32) * 0.1),
    ]
    graph = helper.make_graph(
        n1 + [pool] + n2 + head,
        "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.producer_name = "onnxpy-tests"
    return model


def cnn() -> Path:
    """The Conv+BN CNN: image [batch,3,16,16] -> logits [batch,10]; 10 nodes."""
    return _atomic(cache() / "cnn.onnx", lambda p: onnx.save(_cnn_model(), p))


def perturbed(path: Path, initializer: str, factor: float = 1.05) -> onnx.ModelProto:
    """A copy of the model at ``path`` with one initializer scaled (names unchanged)."""
    model = onnx.load(path)
    for i, t in enumerate(model.graph.initializer):
        if t.name == initializer:
            model.graph.initializer[i].CopyFrom(_init(t.name, numpy_helper.to_array(t) * factor))
            return model
    raise KeyError(initializer)


def iris_forest() -> tuple[Path, Path]:
    """(pickle of a fitted RandomForestClassifier, held-out rows .npy)."""

    def write(p: Path) -> None:
        from sklearn.datasets import load_iris
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.model_selection import train_test_split

        x, y = load_iris(return_X_y=True)
        xt, xh, yt, _ = train_test_split(x, y, test_size=0.3, random_state=42)
        clf = RandomForestClassifier(n_estimators=10, random_state=42).fit(xt, yt)
        np.save(cache() / "iris_holdout.npy", xh.astype(np.float32))
        with open(p, "wb") as f:
            pickle.dump(clf, f)

    pkl = _atomic(cache() / "iris_forest.pkl", write)
    return pkl, cache() / "iris_holdout.npy"


def tiny_bert_dir() -> Path:
    """A local transformers directory: 2-layer BERT (hidden 32) for 3-way classification."""
    folder = cache() / "tiny-bert"

    def write(p: Path) -> None:
        import torch
        from transformers import BertConfig, BertForSequenceClassification

        torch.manual_seed(0)
        config = BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=64,
                            max_position_embeddings=64, num_labels=3)  # fmt: skip
        BertForSequenceClassification(config).save_pretrained(p)

    return _atomic(folder, write)


MODULE_SOURCE = """
import torch
from torch import nn


def make_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 3))


def make_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 4),
    ).eval()
"""


def mlp_module_dir() -> Path:
    """A folder with ``tools_test_models.py`` (torch factories ``make_mlp``, ``make_cnn``)."""
    folder = cache() / "torch-module"
    folder.mkdir(exist_ok=True)
    _atomic(folder / "tools_test_models.py", lambda p: p.write_text(MODULE_SOURCE))
    return folder


def wide_model(blocks: int = 300) -> Path:
    """``blocks`` residual blocks of 9 nodes each (MatMul, Add, Relu, Mul, Add, ReduceMean, Sub,
    Div, Add), a long-range edge from the input to every block: 2,700 nodes at 300."""

    def write(p: Path) -> None:
        rng = np.random.default_rng(0)
        nodes, inits = [], []
        x = "x"
        for b in range(blocks):
            w, c = f"w{b}", f"c{b}"
            inits += [_init(w, rng.standard_normal((8, 8)).astype(np.float32) * 0.2),
                      _init(c, np.full(8, 0.5, np.float32))]  # fmt: skip
            t = [f"b{b}_{k}" for k in range(9)]
            nodes += [
                helper.make_node("MatMul", [x, w], [t[0]], name=f"b{b}/matmul"),
                helper.make_node("Add", [t[0], c], [t[1]], name=f"b{b}/bias"),
                helper.make_node("Relu", [t[1]], [t[2]], name=f"b{b}/relu"),
                helper.make_node("Mul", [t[2], c], [t[3]], name=f"b{b}/scale"),
                helper.make_node("Add", [t[3], x], [t[4]], name=f"b{b}/residual"),
                helper.make_node("ReduceMean", [t[4]], [t[5]], name=f"b{b}/mean", axes=[-1]),
                helper.make_node("Sub", [t[4], t[5]], [t[6]], name=f"b{b}/center"),
                helper.make_node("Div", [t[6], c], [t[7]], name=f"b{b}/norm"),
                helper.make_node("Add", [t[7], "x"], [t[8]], name=f"b{b}/skip_input"),
            ]
            x = t[8]
        graph = helper.make_graph(
            nodes, "wide",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", 8])], inits,
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, p)

    return _atomic(cache() / f"wide{blocks}.onnx", write)


def broken_model() -> onnx.ModelProto:
    """Two bad nodes: Relu with an attribute it lacks, MatMul of [2,3] by [4,5]."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["a"], name="bad_matmul"),
        helper.make_node("Relu", ["a"], ["y"], name="bad_relu", alpha=1.0),
    ]
    w = _init("w", np.zeros((4, 5), np.float32))
    graph = helper.make_graph(nodes, "broken", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model
