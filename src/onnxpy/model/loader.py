"""Load a model from a path, bytes or ModelProto, and refuse what is not a valid ONNX model."""

from __future__ import annotations

import mmap
import os

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import ModelProto

from onnxpy.errors import InvalidArgument, InvalidGraph, InvalidProtobuf, NoSuchFile
from onnxpy.model.normalize import normalize_model
from onnxpy.model.skeleton import skeleton
from onnxpy.model.validate import graph_problems, header_problems, raise_first
from onnxpy.model.weights import InlineWeights
from onnxpy.model.wire import ReadInto, parse_model_lean

__all__ = ["LoadedModel", "load_model", "model_opsets", "checkable"]


class LoadedModel:
    """A checked model, its folder (for external data) and the opsets it imports."""

    __slots__ = ("proto", "base_dir", "opsets", "path", "weights")

    def __init__(
        self,
        proto: ModelProto,
        base_dir: str | None,
        opsets: dict[str, int] | None = None,
        path: str | None = None,
        weights: InlineWeights | None = None,
    ) -> None:
        self.proto = proto
        self.base_dir = base_dir
        self.opsets = {} if opsets is None else opsets
        self.path = path
        # The big initializers' bytes, when the proto refers to them instead of holding them.
        self.weights = weights


def _parse_lean(
    data: bytes | mmap.mmap, what: str, read_into: ReadInto | None = None
) -> tuple[ModelProto, InlineWeights | None]:
    """Parse with big weights copied once into arrays (falls back to the plain parser)."""
    lean = parse_model_lean(data, read_into)
    if lean is not None and lean[0].HasField("graph") and lean[0].ir_version:
        return lean
    return _parse(bytes(data), what), None


def _file_reader(f) -> ReadInto:
    def read_into(offset: int, array: np.ndarray) -> None:
        f.seek(offset)
        if f.readinto(memoryview(array)) != array.nbytes:
            raise OSError(f"unexpected end of file reading {array.nbytes} bytes at {offset}")

    return read_into


def _read_file(path: str) -> tuple[ModelProto, InlineWeights | None]:
    """Scan the framing through a read-only mapping; read the weights with the same handle."""
    with open(path, "rb") as f:
        try:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):  # empty file, or a file system without mmap
            return _parse(f.read(), path), None
        try:
            return _parse_lean(mapped, path, _file_reader(f))
        finally:
            try:
                mapped.close()
            except BufferError:  # a view is still alive somewhere; the GC closes it later
                pass


def _parse(data: bytes, what: str) -> ModelProto:
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise InvalidProtobuf(
            f"Failed to load model from {what}: not a valid ONNX protobuf ({e})"
        ) from e
    if not model.HasField("graph"):
        raise InvalidProtobuf(
            f"Failed to load model from {what}: the bytes parse but hold no ONNX model "
            "(no graph); the file is corrupt or not an ONNX model"
        )
    return model


_COMPAT_DOMAIN = "onnxpy.ort_compat"


def _ort_compatible(model: ModelProto) -> ModelProto:
    """Let the checker pass default-domain nodes onnxruntime's optimizer writes off-spec.

    onnxruntime saves e.g. SimplifiedLayerNormalization, or LayerNormalization in opset-14
    models, in the default domain although ONNX defines no such schema there. Those nodes
    (and only those onnxpy has a kernel for) are moved to a private domain in the copy the
    checker sees; anything else unknown is still refused.
    """
    from onnxpy.kernels.registry import lookup

    opset = next((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), None)
    if opset is None:
        return model
    off_spec = []
    # Asked once per operator type (GPT-2: 3,300 nodes of ~30 types; 21 ms asked per node).
    moved: dict[str, bool] = {}
    for i, node in enumerate(model.graph.node):
        if node.domain not in ("", "ai.onnx"):
            continue
        op = node.op_type
        if op not in moved:
            try:
                onnx.defs.get_schema(op, opset, "")
                moved[op] = False
            except onnx.defs.SchemaError:
                moved[op] = lookup("", op, opset) is not None
        if moved[op]:
            off_spec.append(i)
    if not off_spec:
        return model
    copy = ModelProto()
    copy.CopyFrom(model)
    for i in off_spec:
        copy.graph.node[i].domain = _COMPAT_DOMAIN
    copy.opset_import.append(onnx.helper.make_opsetid(_COMPAT_DOMAIN, 1))
    return copy


def _relax_to_the_ir(model: ModelProto) -> ModelProto:
    """A copy the checker accepts where it is stricter than the IR (the model itself is kept).

    - A main graph input or output may declare a tensor type without a shape (the IR makes
      ``TypeProto.Tensor.shape`` optional; skl2onnx writes IsolationForest, GaussianProcess and
      LocalOutlierFactor outputs that way); the checker insists on the field.
    - Before IR 4 every initializer had to be a graph input too; files of IR 3 that list
      only some are run by onnxruntime with the others as constants.
    """
    g = model.graph
    shapeless = [
        vi
        for vi in list(g.input) + list(g.output)
        if vi.type.WhichOneof("value") == "tensor_type"
        and not vi.type.tensor_type.HasField("shape")
    ]
    listed = {i.name for i in g.input}
    unlisted = (
        [t for t in g.initializer if t.name not in listed] if 0 < model.ir_version < 4 else []
    )
    if not shapeless and not unlisted:
        return model
    copy = ModelProto()
    copy.CopyFrom(model)
    cg = copy.graph
    inferred: dict[str, onnx.TypeProto] = {}
    if shapeless:  # the shape inference finds, where it finds one: it agrees with itself
        try:
            g2 = onnx.shape_inference.infer_shapes(copy, strict_mode=False).graph
            inferred = {v.name: v.type for v in list(g2.output) + list(g2.value_info)}
        except Exception:  # noqa: BLE001 - then the field is merely present
            pass
    for vi in list(cg.input) + list(cg.output):
        if vi.type.WhichOneof("value") != "tensor_type" or vi.type.tensor_type.HasField("shape"):
            continue
        found = inferred.get(vi.name)
        if found is not None and found.tensor_type.HasField("shape"):
            vi.type.tensor_type.shape.CopyFrom(found.tensor_type.shape)
        else:
            vi.type.tensor_type.shape.SetInParent()  # the field present, no dims claimed
    for t in unlisted:
        cg.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return copy


def checkable(model: ModelProto) -> ModelProto:
    """What ``onnx.checker`` should see of ``model``: its skeleton (weights as typed inputs:
    checking 440 MB of weights costs seconds and adds nothing that decoding them does not
    check), relaxed where the checker is stricter than the IR, with onnxruntime's off-spec
    default-domain nodes moved aside."""
    return _ort_compatible(_relax_to_the_ir(skeleton(model)))


def _check(model: ModelProto) -> None:
    try:
        onnx.checker.check_model(checkable(model))
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
        raise InvalidGraph(f"Model failed ONNX validation: {first}") from e
    except UnicodeDecodeError as e:  # e.g. a doc string or metadata entry
        raise InvalidGraph(f"Model holds text that is not valid UTF-8: {e}") from e


def model_opsets(model: ModelProto) -> dict[str, int]:
    """{domain: version} of the opsets ``model`` imports ('' for the default domain)."""
    opsets: dict[str, int] = {}
    for imp in model.opset_import:
        domain = "" if imp.domain in ("", "ai.onnx") else imp.domain
        opsets[domain] = int(imp.version)
    return opsets


def load_model(
    source: str | os.PathLike | bytes | ModelProto, *, check: bool = True
) -> LoadedModel:
    """Parse and validate a model. External data stays on disk (mapped later, never copied)."""
    path = None
    weights = None
    if isinstance(source, ModelProto):
        model = source
        base_dir = None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        model, weights = _parse_lean(source, "bytes")
        base_dir = None
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise NoSuchFile(f"Load model from {path} failed: file does not exist")
        model, weights = _read_file(path)
        base_dir = os.path.dirname(os.path.abspath(path))
    else:
        raise InvalidArgument(
            f"Expected a path, bytes or onnx.ModelProto, got {type(source).__name__}"
        )
    if check:
        raise_first(header_problems(model))
        normalize_model(model)
        _check(model)
        raise_first(graph_problems(model, base_dir))
    return LoadedModel(
        proto=model, base_dir=base_dir, opsets=model_opsets(model), path=path, weights=weights
    )
