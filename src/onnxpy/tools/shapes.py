"""Making dynamic dimensions static, and the shapes of every value from inference.

``fix_shapes`` is what ``optimize --fix-shape`` does before optimizing (static shapes let shape
folding and constant folding go further); ``value_shapes`` gives ``inspect`` the shapes its FLOP
estimates need, with symbolic dimensions bound to chosen values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import onnx

from onnxpy.errors import InvalidArgument

__all__ = ["parse_fix_shape", "fix_shapes", "bind_dims", "value_shapes"]


def parse_fix_shape(spec: str) -> tuple[str, list[int]]:
    """``NAME=1,3,224,224`` -> ('NAME', [1, 3, 224, 224])."""
    name, sep, dims = spec.partition("=")
    if not sep or not name:
        raise InvalidArgument(f"--fix-shape {spec!r}: expected NAME=1,3,224,224")
    try:
        return name, [int(d) for d in dims.split(",") if d.strip()]
    except ValueError:
        raise InvalidArgument(f"--fix-shape {spec!r}: dimensions must be integers") from None


def fix_shapes(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    """A copy of ``model`` whose named inputs have the given static shapes.

    Every other use of a symbolic dimension bound this way (other inputs, outputs) takes the
    same value, and the stale intermediate annotations are dropped so that inference recomputes
    them from the new inputs.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    by_name = {v.name: v for v in graph.input}
    bound: dict[str, int] = {}
    for name, dims in shapes.items():
        vi = by_name.get(name)
        if vi is None or vi.type.WhichOneof("value") != "tensor_type":
            raise InvalidArgument(
                f"--fix-shape: '{name}' is not a tensor input; inputs are {list(by_name)}"
            )
        old = vi.type.tensor_type.shape.dim
        if old and len(old) != len(dims):
            raise InvalidArgument(
                f"--fix-shape {name}: rank {len(dims)} but the model says {len(old)}"
            )
        for d, value in zip(old, dims):
            if d.HasField("dim_value") and d.dim_value != value:
                raise InvalidArgument(
                    f"--fix-shape {name}: dimension {d.dim_value} is fixed, not {value}"
                )
            if d.HasField("dim_param"):
                bound[d.dim_param] = value
        vi.type.tensor_type.shape.Clear()
        for value in dims:
            vi.type.tensor_type.shape.dim.add().dim_value = value
    bind_dims(out, bound)
    del graph.value_info[:]
    return out


def bind_dims(model: onnx.ModelProto, dims: Mapping[str, int]) -> None:
    """Replace symbolic dimensions named in ``dims`` by values, in inputs and outputs (in place)."""
    for vi in list(model.graph.input) + list(model.graph.output):
        if vi.type.WhichOneof("value") != "tensor_type":
            continue
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and d.dim_param in dims:
                d.dim_value = dims[d.dim_param]


def value_shapes(
    model: onnx.ModelProto, dims: Mapping[str, int] | None = None, default_dim: int = 1
) -> dict[str, list[int | None]]:
    """Shapes of every value (inputs, initializers, intermediates, outputs) from inference,
    with symbolic input dimensions set from ``dims`` or ``default_dim``."""
    from onnxpy.model.skeleton import infer_types

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    names = {
        d.dim_param
        for vi in copy.graph.input
        if vi.type.WhichOneof("value") == "tensor_type"
        for d in vi.type.tensor_type.shape.dim
        if d.HasField("dim_param")
    }
    bind_dims(copy, {n: (dims or {}).get(n, default_dim) for n in names})
    del copy.graph.value_info[:]
    try:
        graph = infer_types(copy).graph
    except Exception:  # noqa: BLE001 - an uninferable model still gets what is declared
        graph = copy.graph
    shapes: dict[str, list[int | None]] = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if vi.type.WhichOneof("value") == "tensor_type" and vi.type.tensor_type.HasField("shape"):
            shapes[vi.name] = [
                d.dim_value if d.HasField("dim_value") else None
                for d in vi.type.tensor_type.shape.dim
            ]
    for t in model.graph.initializer:
        shapes[t.name] = list(t.dims)
    return shapes
