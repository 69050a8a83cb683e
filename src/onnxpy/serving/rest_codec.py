"""The v2 REST body <-> data-plane messages, including the binary tensor data extension.

A request body is a JSON object, optionally followed by binary tensor data: the header
``Inference-Header-Content-Length`` then gives the JSON part's length, and each input whose
parameters hold ``binary_data_size`` takes that many bytes, in input order. Outputs come back as
JSON ``data`` or, when an output asks ``"binary_data": true`` (or the request sets
``"binary_data_output": true`` and the output does not say otherwise), as binary data after the
JSON, sized by ``binary_data_size``. Only the structure is checked here; the data plane checks
the tensors themselves, the same way for REST and gRPC.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from onnxpy.errors import InvalidArgument
from onnxpy.serving import tensors
from onnxpy.serving.errors import RequestTooLarge, Unsupported
from onnxpy.serving.messages import InferRequest, InferResponse, InputTensor, RequestedOutput

__all__ = [
    "parse_json",
    "parse_infer_request",
    "encode_infer_response",
    "decompress",
    "compress",
    "choose_encoding",
    "message_to_dict",
]


def parse_json(body: bytes | memoryview, what: str = "request body") -> dict[str, Any]:
    """A JSON object, or InvalidArgument saying why not."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidArgument(f"malformed JSON in the {what}: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"the {what} must be a JSON object, got {type(doc).__name__}")
    return doc


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return value


def _name(entry: dict[str, Any], what: str) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{what} needs a 'name' string")
    return name


def parse_infer_request(
    body: bytes, header_length: str | None, model_name: str, model_version: str
) -> tuple[InferRequest, bool]:
    """A v2 inference body as an InferRequest, and whether outputs default to binary."""
    view = memoryview(body)
    if header_length is not None:
        if not header_length.strip().isdigit():
            raise InvalidArgument(
                f"Inference-Header-Content-Length must be a byte count, got {header_length!r}"
            )
        n = int(header_length)
        if n > len(body):
            raise InvalidArgument(
                f"Inference-Header-Content-Length is {n} but the body has only {len(body)} bytes"
            )
        doc, binary = parse_json(view[:n]), view[n:]
    else:
        doc, binary = parse_json(view), view[:0]
    request_id = doc.get("id", "")
    if not isinstance(request_id, str):
        raise InvalidArgument("'id' must be a string")
    parameters = _object(doc.get("parameters"), "'parameters'")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidArgument("'inputs' must be a non-empty list of tensors")
    inputs, offset = [], 0
    for i, entry in enumerate(raw_inputs):
        if not isinstance(entry, dict):
            raise InvalidArgument(f"inputs[{i}] must be a JSON object")
        name = _name(entry, f"inputs[{i}]")
        datatype = entry.get("datatype")
        if datatype not in tensors.V2_DTYPES:
            raise InvalidArgument(
                f"input '{name}': datatype {datatype!r} is not one of "
                f"{', '.join(tensors.V2_DTYPES)}"
            )
        params = _object(entry.get("parameters"), f"input '{name}' parameters")
        t = InputTensor(name, datatype, entry.get("shape"), parameters=params)
        size = params.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise InvalidArgument(f"input '{name}': binary_data_size must be a byte count")
            if offset + size > len(binary):
                raise InvalidArgument(
                    f"input '{name}': binary_data_size {size} runs past the body's binary part "
                    f"({len(binary) - offset} bytes left)"
                )
            t.raw = binary[offset : offset + size]
            offset += size
        elif "data" in entry:
            t.data = entry["data"]
        elif "shared_memory_region" not in params:
            raise InvalidArgument(f"input '{name}' has neither 'data' nor 'binary_data_size'")
        inputs.append(t)
    if offset != len(binary):
        raise InvalidArgument(
            f"the body holds {len(binary) - offset} bytes of binary data that no input's "
            "binary_data_size accounts for"
        )
    outputs = []
    raw_outputs = doc.get("outputs", [])
    if not isinstance(raw_outputs, list):
        raise InvalidArgument("'outputs' must be a list")
    for i, entry in enumerate(raw_outputs):
        if not isinstance(entry, dict):
            raise InvalidArgument(f"outputs[{i}] must be a JSON object")
        name = _name(entry, f"outputs[{i}]")
        params = _object(entry.get("parameters"), f"output '{name}' parameters")
        count = params.get("classification", 0)
        if isinstance(count, bool) or not isinstance(count, int):
            raise InvalidArgument(f"output '{name}': classification must be an integer")
        binary_flag = params.get("binary_data")
        if binary_flag is not None and not isinstance(binary_flag, bool):
            raise InvalidArgument(f"output '{name}': binary_data must be true or false")
        outputs.append(RequestedOutput(name, count, binary_flag, params))
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise InvalidArgument("binary_data_output must be true or false")
    request = InferRequest(model_name, inputs, model_version, request_id, outputs, parameters)
    return request, binary_default


def encode_infer_response(
    response: InferResponse, binary_default: bool
) -> tuple[bytes, int | None]:
    """The response body, and the JSON part's length when binary data follows it."""
    outputs, chunks = [], []
    for out in response.outputs:
        entry: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": out.shape}
        want = out.requested.binary if out.requested is not None else None
        if binary_default if want is None else want:
            raw = tensors.encode_raw(out.array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = tensors.json_data(out.array)
        outputs.append(entry)
    doc: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
    }
    if response.id:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    doc["outputs"] = outputs
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo a gzip or deflate Content-Encoding without ever holding more than ``limit`` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate", "x-gzip"):
        raise Unsupported(f"Content-Encoding '{encoding}' is not supported (gzip, deflate)")
    d = zlib.decompressobj(32 + zlib.MAX_WBITS)  # either framing: gzip or zlib
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as e:
        raise InvalidArgument(f"the body is not valid {encoding} data: {e}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise RequestTooLarge(f"the decompressed body is over the limit of {limit} bytes")
    if not d.eof:
        raise InvalidArgument(f"the {encoding} body is truncated")
    return out


def choose_encoding(accept: str | None) -> str | None:
    """gzip or deflate when the client's Accept-Encoding allows one (q > 0), else None."""
    if not accept:
        return None
    allowed = {}
    for part in accept.split(","):
        token, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        allowed[token.strip().lower()] = q
    for name in ("gzip", "deflate"):
        if allowed.get(name, 0) > 0:
            return name
    return None


def compress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        c = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    else:
        c = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS)
    return c.compress(body) + c.flush()


def message_to_dict(message: Any) -> dict[str, Any]:
    """A protobuf message as JSON-ready dict: field names as declared, integers as numbers
    (protobuf's own JSON form writes 64-bit integers as strings), enums by name."""
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        out[field.name] = _field_value(field, value)
    return out


def _field_value(field: Any, value: Any) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        return {k: _scalar(value_field, v) for k, v in value.items()}
    if field.is_repeated:
        return [_scalar(field, v) for v in value]
    return _scalar(field, value)


def _scalar(field: Any, value: Any) -> Any:
    if field.message_type is not None:
        return message_to_dict(value)
    if field.enum_type is not None:
        return field.enum_type.values_by_number[value].name
    return value
