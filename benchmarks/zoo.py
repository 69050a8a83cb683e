"""Model zoo built from code with seeded random weights or seeded data (no downloads).

Each builder writes ``<name>.onnx`` into a cache folder and returns its path, plus a function
making seeded inputs. The torch models are plain re-statements of the published architectures
(ResNet-50, BERT-base), exported with torch's TorchScript exporter at opset 17.

The classical models (``iris_forest``, ``big_forest``, ``logreg``) are trained with scikit-learn
and converted with skl2onnx (opset 17, ai.onnx.ml 3) with ZipMap disabled, so every runtime
returns the same two plain tensors (label, probabilities) that ``predict``/``predict_proba`` give.
The fitted estimator is pickled next to the ONNX file (:func:`sklearn_model`), and a held-out
sample of the data is saved as ``<name>.x.npy`` so that input makers need only NumPy.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["cache_dir", "build", "inputs_for", "sklearn_model", "MODELS", "SKLEARN_MODELS"]


def cache_dir() -> Path:
    root = os.environ.get("ONNXPY_CACHE_DIR") or os.path.join(Path.home(), ".cache", "onnxpy")
    d = Path(root) / "zoo"
    d.mkdir(parents=True, exist_ok=True)
    return d


# -- torch architectures ------------------------------------------------------------------------
def _resnet50():
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, width: int, stride: int) -> None:
            super().__init__()
            cout = width * 4
            self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            identity = x if self.down is None else self.down(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + identity)

    class ResNet50(nn.Module):
        def __init__(self, num_classes: int = 1000) -> None:
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
            layers, cin = [], 64
            for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
                for b in range(blocks):
                    layers.append(Bottleneck(cin, width, stride if b == 0 else 1))
                    cin = width * 4
            self.layers = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(2048, num_classes)

        def forward(self, x):
            x = self.pool(self.layers(self.stem(x)))
            return self.fc(torch.flatten(x, 1))

    model = ResNet50()
    # Non-trivial running statistics, so BatchNormalization is really exercised.
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def _bert_base(vocab: int = 30522, hidden: int = 768, layers: int = 12, heads: int = 12):
    import math

    import torch
    from torch import nn

    class SelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q = nn.Linear(hidden, hidden)
            self.k = nn.Linear(hidden, hidden)
            self.v = nn.Linear(hidden, hidden)
            self.o = nn.Linear(hidden, hidden)
            self.ln = nn.LayerNorm(hidden, eps=1e-12)

        def forward(self, x, mask_bias):
            b, s, _ = x.shape
            d = hidden // heads

            def split(t):
                return t.view(b, s, heads, d).transpose(1, 2)

            q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + mask_bias
            ctx = torch.matmul(torch.softmax(scores, dim=-1), v)
            ctx = ctx.transpose(1, 2).reshape(b, s, hidden)
            return self.ln(x + self.o(ctx))

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = SelfAttention()
            self.up = nn.Linear(hidden, 4 * hidden)
            self.down = nn.Linear(4 * hidden, hidden)
            self.ln = nn.LayerNorm(hidden, eps=1e-12)

        def forward(self, x, mask_bias):
            x = self.attn(x, mask_bias)
            return self.ln(x + self.down(nn.functional.gelu(self.up(x))))

    class Bert(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word = nn.Embedding(vocab, hidden)
            self.pos = nn.Embedding(512, hidden)
            self.token_type = nn.Embedding(2, hidden)
            self.ln = nn.LayerNorm(hidden, eps=1e-12)
            self.layers = nn.ModuleList(Layer() for _ in range(layers))
            self.pool = nn.Linear(hidden, hidden)

        def forward(self, input_ids, attention_mask, token_type_ids):
            s = input_ids.shape[1]
            positions = torch.arange(s, device=input_ids.device).unsqueeze(0)
            x = self.ln(
                self.word(input_ids) + self.pos(positions) + self.token_type(token_type_ids)
            )
            mask_bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
            for layer in self.layers:
                x = layer(x, mask_bias)
            return x, torch.tanh(self.pool(x[:, 0]))

    return Bert().eval()


def _mobilenet(width: float = 1.0):
    """MobileNetV2's inverted residuals (pointwise expand, depthwise 3x3, pointwise project).

    Stride-2 depthwise convolutions get TensorFlow's "same" padding, an explicit asymmetric
    ``ZeroPad2d((0, 1, 0, 1))`` in front of an unpadded Conv, as models converted from
    TensorFlow carry it: that exports as a separate Pad node, which the optimizer should fold.
    """
    from torch import nn

    def ch(c: int) -> int:
        return max(8, int(c * width + 4) // 8 * 8)

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = cin * expand
            layers: list[nn.Module] = []
            if expand != 1:
                layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden)]
                layers.append(nn.ReLU6())
            if stride == 2:
                layers.append(nn.ZeroPad2d((0, 1, 0, 1)))
            pad = 0 if stride == 2 else 1
            layers += [
                nn.Conv2d(hidden, hidden, 3, stride, pad, groups=hidden, bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU6(),
                nn.Conv2d(hidden, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            ]
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    class MobileNet(nn.Module):
        def __init__(self, num_classes: int = 1000) -> None:
            super().__init__()
            cin = ch(32)
            layers: list[nn.Module] = [
                nn.Conv2d(3, cin, 3, 2, 1, bias=False),
                nn.BatchNorm2d(cin),
                nn.ReLU6(),
            ]
            # (expansion, output channels, repeats, first stride), as in the MobileNetV2 paper
            for t, c, n, s in (
                (1, 16, 1, 1),
                (6, 24, 2, 2),
                (6, 32, 3, 2),
                (6, 64, 4, 2),
                (6, 96, 3, 1),
                (6, 160, 3, 2),
                (6, 320, 1, 1),
            ):
                for i in range(n):
                    layers.append(InvertedResidual(cin, ch(c), s if i == 0 else 1, t))
                    cin = ch(c)
            layers += [nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6()]
            self.features = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(1280, num_classes)

        def forward(self, x):
            return self.fc(self.pool(self.features(x)).flatten(1))

    return _randomize_bn(MobileNet())


def _randomize_bn(model):
    """Non-trivial running statistics, so BatchNormalization is really exercised."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def _lstm_tagger(vocab: int = 5000, embed: int = 128, hidden: int = 256):
    """A sequence tagger: embedding, a two-layer LSTM, a GRU, a per-step linear head."""
    from torch import nn

    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, embed)
            self.lstm = nn.LSTM(embed, hidden, num_layers=2, batch_first=True)
            self.gru = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
            self.head = nn.Linear(hidden, 32)

        def forward(self, ids):
            x, _ = self.lstm(self.embed(ids))
            x, _ = self.gru(x)
            return self.head(x)

    return Tagger().eval()


def _gpt2(vocab: int = 8192, hidden: int = 384, layers: int = 12, heads: int = 6, ctx: int = 256):
    """GPT-2's decoder: pre-LayerNorm blocks, causal self-attention masked from a lower-triangular
    buffer, the tanh GELU written out, Conv1D-style projections (addmm), tied output embedding.

    Exported with a dynamic sequence axis, so the shape arithmetic (Shape, Gather, Slice,
    Concat...) stays in the graph: thousands of nodes, as exported GPT-2 files have.
    """
    import math

    import torch
    from torch import nn

    def gelu_new(x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))

    class Conv1D(nn.Module):
        def __init__(self, nin: int, nout: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(nin, nout) * 0.02)
            self.bias = nn.Parameter(torch.randn(nout) * 0.02)

        def forward(self, x):
            shape = x.size()[:-1] + (self.weight.size(-1),)
            x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
            return x.view(shape)

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c_attn = Conv1D(hidden, 3 * hidden)
            self.c_proj = Conv1D(hidden, hidden)
            self.register_buffer("bias", torch.tril(torch.ones(ctx, ctx)).view(1, 1, ctx, ctx))

        def split(self, x):
            return x.view(x.size()[:-1] + (heads, x.size(-1) // heads)).permute(0, 2, 1, 3)

        def forward(self, x):
            q, k, v = self.c_attn(x).split(hidden, dim=2)
            q, k, v = self.split(q), self.split(k), self.split(v)
            w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(v.size(-1))
            nd, ns = w.size(-2), w.size(-1)
            mask = self.bias[:, :, ns - nd : ns, :ns]
            w = torch.where(mask.bool(), w, torch.tensor(-1e4, dtype=w.dtype))
            a = torch.matmul(nn.functional.softmax(w, dim=-1), v).permute(0, 2, 1, 3)
            a = a.contiguous().view(a.size()[:-2] + (a.size(-2) * a.size(-1),))
            return self.c_proj(a)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(hidden, eps=1e-5)
            self.attn = Attention()
            self.ln_2 = nn.LayerNorm(hidden, eps=1e-5)
            self.c_fc = Conv1D(hidden, 4 * hidden)
            self.c_proj = Conv1D(4 * hidden, hidden)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.c_proj(gelu_new(self.c_fc(self.ln_2(x))))

    class GPT2(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte = nn.Embedding(vocab, hidden)
            self.wpe = nn.Embedding(ctx, hidden)
            self.h = nn.ModuleList(Block() for _ in range(layers))
            self.ln_f = nn.LayerNorm(hidden, eps=1e-5)

        def forward(self, input_ids):
            s = input_ids.size(-1)
            pos = torch.arange(0, s, dtype=torch.long, device=input_ids.device).unsqueeze(0)
            x = self.wte(input_ids) + self.wpe(pos)
            for block in self.h:
                x = block(x)
            return torch.matmul(self.ln_f(x), self.wte.weight.t())

    torch.manual_seed(0)
    model = GPT2()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("w"):
                p.normal_(0.0, 0.02)
    return model.eval()


def _export_torch(model, args: tuple, path: Path, input_names, output_names, dynamic_axes) -> None:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            args,
            str(path),
            opset_version=17,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            dynamo=False,
        )


def _build_resnet50(path: Path) -> None:
    import torch

    torch.manual_seed(0)
    model = _resnet50()
    _export_torch(
        model, (torch.randn(1, 3, 224, 224),), path, ["input"], ["logits"], {"input": {0: "batch"}}
    )


def _build_bert(path: Path) -> None:
    import torch

    torch.manual_seed(0)
    model = _bert_base()
    ids = torch.randint(0, 30522, (1, 128))
    _export_torch(
        model,
        (ids, torch.ones(1, 128, dtype=torch.int64), torch.zeros(1, 128, dtype=torch.int64)),
        path,
        ["input_ids", "attention_mask", "token_type_ids"],
        ["last_hidden_state", "pooler_output"],
        {n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask", "token_type_ids")},
    )


def _build_mlp(path: Path) -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
    ).eval()
    _export_torch(model, (torch.randn(64, 784),), path, ["x"], ["y"], {"x": {0: "batch"}})


def _build_mobilenet(path: Path) -> None:
    import torch

    torch.manual_seed(0)
    model = _mobilenet()
    _export_torch(
        model, (torch.randn(1, 3, 224, 224),), path, ["input"], ["logits"], {"input": {0: "batch"}}
    )


def _build_lstm(path: Path) -> None:
    import torch

    torch.manual_seed(0)
    model = _lstm_tagger()
    ids = torch.randint(0, 5000, (1, 64))
    _export_torch(model, (ids,), path, ["ids"], ["tags"], {"ids": {0: "batch", 1: "seq"}})


def _build_gpt2(path: Path) -> None:
    import torch

    model = _gpt2()
    ids = torch.randint(0, 8192, (1, 64))
    _export_torch(
        model, (ids,), path, ["input_ids"], ["logits"], {"input_ids": {0: "batch", 1: "seq"}}
    )


def _inputs_image(batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"input": rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)}


def _inputs_lstm(batch: int, seed: int, seq: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"ids": rng.integers(0, 5000, (batch, seq), dtype=np.int64)}


def _inputs_gpt2(batch: int, seed: int, seq: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"input_ids": rng.integers(0, 8192, (batch, seq), dtype=np.int64)}


def _inputs_bert(batch: int, seed: int, seq: int = 128) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), dtype=np.int64)
    mask[:, seq - seq // 8 :] = 0  # padded tail, so the mask path matters
    return {
        "input_ids": rng.integers(0, 30522, (batch, seq), dtype=np.int64),
        "attention_mask": mask,
        "token_type_ids": (np.arange(seq) >= seq // 2).astype(np.int64)[None].repeat(batch, 0),
    }


def _inputs_mlp(batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((batch, 784), dtype=np.float32)}


def _build_tiny10(path: Path) -> None:
    """Ten cheap elementwise nodes on a [batch, 16] tensor: per-node dispatch cost, no math."""
    import onnx
    from onnx import TensorProto, helper

    ops = ["Relu", "Neg", "Abs", "Sigmoid", "Exp", "Relu", "Neg", "Abs", "Tanh", "Sqrt"]
    names = ["x"] + [f"t{i}" for i in range(len(ops) - 1)] + ["y"]
    nodes = [helper.make_node(op, [names[i]], [names[i + 1]]) for i, op in enumerate(ops)]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 16]) for n in ("x", "y")]
    graph = helper.make_graph(nodes, "tiny10", [vi[0]], [vi[1]])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def _inputs_tiny10(batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((batch, 16), dtype=np.float32)}


# -- scikit-learn models ------------------------------------------------------------------------
def _save_sklearn(model, x_train: np.ndarray, x_holdout: np.ndarray, path: Path) -> None:
    """Convert with ZipMap off, pickle the estimator, keep held-out rows for the input maker."""
    import pickle

    from skl2onnx import to_onnx

    options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    onx = to_onnx(
        model,
        x_train[:1].astype(np.float32),
        target_opset={"": 17, "ai.onnx.ml": 3},
        options=options,
    )
    name = path.name.split(".")[0]
    np.save(cache_dir() / f"{name}.x.npy", x_holdout.astype(np.float32))
    with open(cache_dir() / f"{name}.pkl", "wb") as f:
        pickle.dump(model, f)
    path.write_bytes(onx.SerializeToString())


def _build_iris_forest(path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.3, random_state=42)
    clf = RandomForestClassifier(n_estimators=10, random_state=42).fit(x_train, y_train)
    _save_sklearn(clf, x_train, x_test, path)


def _classification_data(n_train: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_train`` rows to fit on plus 10,000 held-out rows, 20 features, seed 0."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n_train + 10_000, n_features=20, n_informative=10, random_state=0
    )
    return x[:n_train], y[:n_train], x[n_train:]


def _build_big_forest(path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    x, y, holdout = _classification_data(50_000)
    clf = RandomForestClassifier(n_estimators=300, max_depth=14, random_state=0, n_jobs=-1)
    clf.fit(x, y)
    _save_sklearn(clf, x, holdout, path)


def _build_logreg(path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y, holdout = _classification_data(50_000)
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    _save_sklearn(clf, x, holdout, path)


def _build_iris_forest100(path: Path) -> None:
    """scikit-learn's default RandomForestClassifier (100 trees) on iris, as a new user fits it."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.3, random_state=42)
    clf = RandomForestClassifier(random_state=42).fit(x_train, y_train)
    _save_sklearn(clf, x_train, x_test, path)


def _build_knn(path: Path) -> None:
    """KNeighborsClassifier (k=5) over 5,000 stored rows: skl2onnx writes the distances as a
    ``Scan`` over the input rows, then ``TopK`` over each row of 5,000 distances."""
    from sklearn.neighbors import KNeighborsClassifier

    x, y, holdout = _classification_data(5_000)
    clf = KNeighborsClassifier(n_neighbors=5).fit(x, y)
    _save_sklearn(clf, x, holdout, path)


def _build_lightgbm(path: Path) -> None:
    """LGBMClassifier (200 trees of up to 31 leaves, 3 classes) converted by onnxmltools."""
    import pickle

    from lightgbm import LGBMClassifier
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=30_000, n_features=20, n_informative=10, n_classes=3, random_state=0
    )
    x_train, holdout = x[:20_000], x[20_000:]
    clf = LGBMClassifier(n_estimators=200, num_leaves=31, random_state=0, verbose=-1, n_jobs=2)
    clf.fit(x_train, y[:20_000])
    onx = convert_lightgbm(
        clf, initial_types=[("X", FloatTensorType([None, 20]))], zipmap=False, target_opset=15
    )
    name = path.name.split(".")[0]
    np.save(cache_dir() / f"{name}.x.npy", holdout.astype(np.float32))
    with open(cache_dir() / f"{name}.pkl", "wb") as f:
        pickle.dump(clf, f)
    path.write_bytes(onx.SerializeToString())


def _holdout_rows(name: str, batch: int, seed: int) -> dict[str, np.ndarray]:
    """``batch`` held-out rows drawn (with replacement) by a seeded generator."""
    pool = np.load(cache_dir() / f"{name}.x.npy")
    rows = np.random.default_rng(seed).integers(0, len(pool), batch)
    return {"X": np.ascontiguousarray(pool[rows])}


def _inputs_sklearn(name: str) -> Callable[..., dict[str, np.ndarray]]:
    return lambda batch, seed: _holdout_rows(name, batch, seed)


MODELS: dict[str, tuple[Callable[[Path], None], Callable[..., dict[str, np.ndarray]]]] = {
    "resnet50": (_build_resnet50, _inputs_image),
    "bert_base": (_build_bert, _inputs_bert),
    "mlp": (_build_mlp, _inputs_mlp),
    "tiny10": (_build_tiny10, _inputs_tiny10),
    "iris_forest": (_build_iris_forest, _inputs_sklearn("iris_forest")),
    "big_forest": (_build_big_forest, _inputs_sklearn("big_forest")),
    "logreg": (_build_logreg, _inputs_sklearn("logreg")),
    "mobilenet": (_build_mobilenet, _inputs_image),
    "lstm": (_build_lstm, _inputs_lstm),
    "gpt2": (_build_gpt2, _inputs_gpt2),
    "iris_forest100": (_build_iris_forest100, _inputs_sklearn("iris_forest100")),
    "knn": (_build_knn, _inputs_sklearn("knn")),
    "lightgbm": (_build_lightgbm, _inputs_sklearn("lightgbm")),
}
SKLEARN_MODELS = frozenset(
    {"iris_forest", "big_forest", "logreg", "iris_forest100", "knn", "lightgbm"}
)


def build(name: str) -> Path:
    """Path of the model, exported once into the cache."""
    path = cache_dir() / f"{name}.onnx"
    if not path.exists():
        # Per-process scratch name, atomic replace: parallel test workers may build at once.
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        MODELS[name][0](tmp)
        os.replace(tmp, path)
    return path


def inputs_for(name: str, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded feeds for ``name`` at ``batch`` rows (build the model first)."""
    return MODELS[name][1](batch, seed)


def sklearn_model(name: str):
    """The fitted scikit-learn estimator behind a classical zoo model (unpickled)."""
    import pickle

    if name not in SKLEARN_MODELS:
        raise KeyError(f"{name!r} is not a scikit-learn model; those are {sorted(SKLEARN_MODELS)}")
    build(name)
    with open(cache_dir() / f"{name}.pkl", "rb") as f:
        return pickle.load(f)
