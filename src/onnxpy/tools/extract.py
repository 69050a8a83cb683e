"""Cut a subgraph out of a model, or move a model to another opset.

onnx does the work (``onnx.utils.Extractor`` and ``onnx.version_converter``); these functions
check the names and the result and say clearly what went wrong.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import onnx

from onnxpy.errors import InvalidArgument
from onnxpy.tools.graph import GraphIndex
from onnxpy.tools.io import load_model_proto
from onnxpy.tools.optimize import save_model

__all__ = ["extract_model", "upgrade_model"]


def extract_model(
    model: str | os.PathLike,
    output: str | os.PathLike,
    inputs: Sequence[str],
    outputs: Sequence[str],
) -> onnx.ModelProto:
    """Write the subgraph of ``model`` that computes ``outputs`` from ``inputs``.

    Every named value must exist; the inputs must be enough to compute the outputs.
    """
    from onnx.utils import Extractor

    proto = load_model_proto(model)
    index = GraphIndex.of(proto)
    known = set(index.producer) | set(index.graph_inputs) | index.initializers
    unknown = [n for n in list(inputs) + list(outputs) if n not in known]
    if unknown:
        raise InvalidArgument(f"{unknown} are not values of the model")
    if not outputs:
        raise InvalidArgument("name at least one output (--outputs)")
    _add_value_types(proto)
    try:
        sub = Extractor(proto).extract_model(list(inputs), list(outputs))
    except Exception as e:  # noqa: BLE001 - onnx raises several classes here
        raise InvalidArgument(f"cannot extract {list(outputs)} from {list(inputs)}: {e}") from e
    fed = {v.name for v in sub.graph.input} | {t.name for t in sub.graph.initializer}
    needed = {n for node in sub.graph.node for n in node.input if n}
    made = {o for node in sub.graph.node for o in node.output}
    loose = sorted(needed - made - fed)
    if loose:
        raise InvalidArgument(f"the outputs also depend on {loose}: add them to --inputs")
    onnx.checker.check_model(sub)
    save_model(sub, output)
    return sub


def _add_value_types(proto: onnx.ModelProto) -> None:
    """The extractor types its new inputs and outputs from value_info: infer what is missing
    (on the weight-free skeleton, so big models need no second copy of their weights)."""
    from onnxpy.model.skeleton import infer_types

    known = {v.name for v in list(proto.graph.value_info) + list(proto.graph.input)}
    known |= {v.name for v in proto.graph.output}
    try:
        inferred = infer_types(proto).graph.value_info
    except Exception:  # noqa: BLE001 - extraction then reports what stays untyped
        return
    proto.graph.value_info.extend(v for v in inferred if v.name not in known)


def upgrade_model(
    model: str | os.PathLike, output: str | os.PathLike, opset: int
) -> onnx.ModelProto:
    """Write ``model`` converted to default-domain opset ``opset`` by onnx's version converter."""
    from onnx import version_converter

    proto = load_model_proto(model)
    current = next((i.version for i in proto.opset_import if i.domain in ("", "ai.onnx")), None)
    if current is None:
        raise InvalidArgument("the model imports no default-domain opset to convert")
    latest = onnx.defs.onnx_opset_version()
    if not 1 <= opset <= latest:
        raise InvalidArgument(f"--opset {opset}: onnx {onnx.__version__} knows opsets 1-{latest}")
    try:
        converted = version_converter.convert_version(proto, opset)
    except Exception as e:  # noqa: BLE001
        raise InvalidArgument(f"onnx cannot convert opset {current} -> {opset}: {e}") from e
    onnx.checker.check_model(converted)
    save_model(converted, output)
    return converted
