"""What every converter shares: the result, value renaming, symbolic batch axes, extras."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import onnx

from onnxpy.errors import InvalidArgument

__all__ = ["Conversion", "rename_values", "name_batch_axis", "need", "MissingDependency"]


class MissingDependency(InvalidArgument, ImportError):
    """A converter's library is not installed; the message names the extra to install."""


def need(module: str, extra: str = "convert") -> Any:
    """Import ``module`` or raise naming ``pip install "onnxpy[extra]"``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependency(
            f"{module} is needed for this conversion but is not installed ({e}): "
            f'pip install "onnxpy[{extra}]"'
        ) from e


@dataclass
class Conversion:
    """A written model and, unless skipped, its validation against the source."""

    path: str
    model: onnx.ModelProto
    validation: Any = None  # onnxpy.tools.validate.ValidationReport

    @property
    def ok(self) -> bool:
        return self.validation is None or self.validation.ok


def rename_values(model: onnx.ModelProto, mapping: Mapping[str, str]) -> None:
    """Rename values (graph inputs/outputs included) everywhere in the main graph, in place."""
    if not mapping:
        return
    g = model.graph
    taken = {o for n in g.node for o in n.output} | {v.name for v in g.input}
    for old, new in mapping.items():
        if new in taken and new not in mapping:
            raise InvalidArgument(f"cannot rename '{old}' to '{new}': the model already has it")
    for node in g.node:
        for i, name in enumerate(node.input):
            node.input[i] = mapping.get(name, name)
        for i, name in enumerate(node.output):
            node.output[i] = mapping.get(name, name)
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        vi.name = mapping.get(vi.name, vi.name)


def name_batch_axis(model: onnx.ModelProto, label: str = "batch") -> None:
    """Give axis 0 of every graph input and output without a fixed size the name ``label``."""
    for vi in list(model.graph.input) + list(model.graph.output):
        if vi.type.WhichOneof("value") != "tensor_type":
            continue
        dims = vi.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = label


def save(model: onnx.ModelProto, path: str | os.PathLike) -> str:
    from onnxpy.tools.optimize import save_model

    save_model(model, path)
    return os.fspath(path)
