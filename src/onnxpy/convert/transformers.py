"""Hugging Face transformers -> ONNX from a local model directory (offline), through torch.onnx.

Tasks: ``feature-extraction`` (AutoModel: last_hidden_state, and pooler_output when the model
has a pooler) and ``sequence-classification`` (AutoModelForSequenceClassification: logits).
Inputs are input_ids, attention_mask and, when the model takes them, token_type_ids; batch and
sequence axes are symbolic. Attention is exported in its eager form (no fused SDPA kernel), which
the TorchScript exporter handles and onnxpy's attention fusion recognizes.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from onnxpy.convert._common import Conversion, need
from onnxpy.convert.torch import export_module
from onnxpy.errors import InvalidArgument

__all__ = ["TASKS", "load_transformer", "convert_transformers", "transformer_feeds"]

TASKS = {
    "feature-extraction": ("AutoModel", ("last_hidden_state", "pooler_output")),
    "sequence-classification": ("AutoModelForSequenceClassification", ("logits",)),
}


def load_transformer(directory: str | os.PathLike, task: str = "feature-extraction") -> Any:
    """The model in ``directory`` (config.json and weights) for ``task``, offline, eval mode."""
    if task not in TASKS:
        raise InvalidArgument(f"task {task!r}: choose one of {', '.join(TASKS)}")
    transformers = need("transformers")
    directory = os.fspath(directory)
    if not os.path.isfile(os.path.join(directory, "config.json")):
        raise InvalidArgument(f"{directory}: no config.json, not a transformers model directory")
    auto = getattr(transformers, TASKS[task][0])
    try:
        model = auto.from_pretrained(directory, local_files_only=True, attn_implementation="eager")
    except Exception as e:  # noqa: BLE001 - transformers raises many classes
        raise InvalidArgument(
            f"{directory}: cannot load for {task}: {type(e).__name__}: {e}"
        ) from e
    return model.eval()


class _Exportable:
    """A torch module taking positional tensors and returning a tuple, around a HF model."""

    def __new__(cls, model: Any, input_names: Sequence[str], output_names: Sequence[str]):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *args):
                out = self.model(**dict(zip(input_names, args)), return_dict=True)
                return tuple(out[k] for k in output_names)

        Wrapper.__name__ = Wrapper.__qualname__ = type(model).__name__  # shown by validate
        return Wrapper().eval()


def _input_names(model: Any) -> list[str]:
    params = inspect.signature(model.forward).parameters
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in params:
        names.append("token_type_ids")
    return names


def transformer_feeds(
    config: Any, names: Sequence[str], batch: int = 2, seq: int = 16, seed: int = 0
) -> dict[str, np.ndarray]:
    """Valid seeded inputs: token ids within the vocabulary, a mask with a padded tail on
    every other row, token types within ``type_vocab_size``."""
    rng = np.random.default_rng(seed)
    feeds = {"input_ids": rng.integers(0, config.vocab_size, (batch, seq), dtype=np.int64)}
    mask = np.ones((batch, seq), dtype=np.int64)
    mask[1::2, seq - seq // 4 :] = 0
    feeds["attention_mask"] = mask
    if "token_type_ids" in names:
        types = getattr(config, "type_vocab_size", 1) or 1
        feeds["token_type_ids"] = (np.arange(seq) >= seq // 2).astype(np.int64)[None].repeat(
            batch, 0
        ) % types
    return {n: feeds[n] for n in names}


def convert_transformers(
    directory: str | os.PathLike,
    output: str | os.PathLike,
    *,
    task: str = "feature-extraction",
    opset: int = 17,
    seq: int = 16,
    validate: bool = True,
    inputs: Sequence[str] = (),
    batch: int = 2,
    rtol: float = 1e-4,
    atol: float = 1e-4,
) -> Conversion:
    """Export the local model in ``directory`` for ``task`` to ``output`` and validate it."""
    need("torch")
    import torch

    model = load_transformer(directory, task)
    names_in = _input_names(model)
    feeds = transformer_feeds(model.config, names_in, batch=batch, seq=seq)
    with torch.no_grad():
        probe = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}, return_dict=True)
    names_out = [k for k in TASKS[task][1] if probe.get(k) is not None]
    wrapper = _Exportable(model, names_in, names_out)
    args = tuple(torch.from_numpy(feeds[n]) for n in names_in)
    axes = {n: {0: "batch", 1: "sequence"} for n in names_in}
    for n in names_out:
        axes[n] = {0: "batch", 1: "sequence"} if n == "last_hidden_state" else {0: "batch"}
    path = os.fspath(output)
    export_module(wrapper, args, path, names_in, names_out, axes, opset)
    import onnx

    result = Conversion(path, onnx.load(path))
    if validate:
        from onnxpy.tools.validate import validate_model as run_validation

        given = None if inputs else feeds
        result.validation = run_validation(
            wrapper, path, inputs=inputs, feeds=given, batch=batch, rtol=rtol, atol=atol
        )
    return result
