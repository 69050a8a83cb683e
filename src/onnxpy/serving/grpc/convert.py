"""gRPC messages <-> data-plane messages: a translation, no tensor checks (the data plane's)."""

from __future__ import annotations

from typing import Any

from onnxpy.errors import InvalidArgument
from onnxpy.serving import tensors
from onnxpy.serving.grpc import inference_pb2 as pb
from onnxpy.serving.messages import InferRequest, InferResponse, InputTensor, RequestedOutput

__all__ = ["request_from_proto", "response_to_proto", "parameters_from_proto", "stats_to_proto"]

# datatype -> the InferTensorContents field that carries it
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def parameters_from_proto(params: Any) -> dict[str, Any]:
    """A parameters map (InferParameter or ModelRepositoryParameter values) as plain values."""
    out = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, which) if which else None
    return out


def _contents(t: Any) -> list:
    field = _CONTENTS_FIELD.get(t.datatype)
    if field is None:
        raise InvalidArgument(
            f"input '{t.name}': {t.datatype} has no typed contents field; send it in "
            "raw_input_contents"
        )
    used = [f.name for f, _ in t.contents.ListFields()]
    if used and used != [field]:
        raise InvalidArgument(f"input '{t.name}': {t.datatype} data belongs in {field}, not {used}")
    values = list(getattr(t.contents, field))
    if t.datatype == "BYTES":
        try:
            return [v.decode("utf-8") for v in values]
        except UnicodeDecodeError:
            raise InvalidArgument(f"input '{t.name}': BYTES elements must be UTF-8 text") from None
    return values


def request_from_proto(r: pb.ModelInferRequest) -> InferRequest:
    raw = r.raw_input_contents
    if raw and len(raw) != len(r.inputs):
        raise InvalidArgument(
            f"raw_input_contents has {len(raw)} entries for {len(r.inputs)} inputs; give one per "
            "input, in order"
        )
    inputs = []
    for i, t in enumerate(r.inputs):
        item = InputTensor(
            t.name, t.datatype, list(t.shape), parameters=parameters_from_proto(t.parameters)
        )
        if t.datatype not in tensors.V2_DTYPES:
            raise InvalidArgument(
                f"input '{t.name}': datatype {t.datatype!r} is not one of "
                f"{', '.join(tensors.V2_DTYPES)}"
            )
        if raw:
            if t.HasField("contents"):
                raise InvalidArgument(
                    f"input '{t.name}' has contents while raw_input_contents is used"
                )
            item.raw = raw[i]
        elif t.HasField("contents"):
            item.data = _contents(t)
        inputs.append(item)
    outputs = []
    for o in r.outputs:
        params = parameters_from_proto(o.parameters)
        count = params.get("classification", 0)
        if isinstance(count, bool) or not isinstance(count, int):
            raise InvalidArgument(f"output '{o.name}': classification must be an int64 parameter")
        outputs.append(RequestedOutput(o.name, count, parameters=params))
    return InferRequest(
        model_name=r.model_name,
        inputs=inputs,
        model_version=r.model_version,
        id=r.id,
        outputs=outputs,
        parameters=parameters_from_proto(r.parameters),
    )


def response_to_proto(response: InferResponse) -> pb.ModelInferResponse:
    """Outputs go in raw_output_contents, the only form tritonclient's gRPC client reads."""
    out = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id
    )
    for t in response.outputs:
        out.outputs.add(name=t.name, datatype=t.datatype, shape=t.shape)
        out.raw_output_contents.append(tensors.encode_raw(t.array))
    return out


def stats_to_proto(snapshots: list[dict]) -> pb.ModelStatisticsResponse:
    from google.protobuf import json_format

    return json_format.ParseDict({"model_stats": snapshots}, pb.ModelStatisticsResponse())
