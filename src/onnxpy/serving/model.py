"""One loaded model version: its session, v2 signature, request checks, scheduler and stats.

:class:`ModelVersion` opens the ONNX file with an onnxpy session, derives the v2 signature
(datatype and shape of each input and output, -1 for dynamic dimensions), completes and checks
the configuration against it, starts the version's :class:`~onnxpy.serving.batching.Scheduler`
and runs the ``model_warmup`` entries before it reports ready.

Outputs that are not tensors, such as skl2onnx's default ZipMap (a sequence of maps, one per
row), cannot travel as v2 tensors; they are served as ``BYTES`` holding JSON, one element per
sequence item (shape ``[-1]``; a map or other value is one element, shape ``[1]``), with map
keys as JSON strings: ``{"0": 0.9, "1": 0.1}``. Convert with ``options={"zipmap": False}`` to
get a plain probability tensor instead.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from onnxpy.errors import InvalidArgument
from onnxpy.serving import tensors
from onnxpy.serving.batching import Scheduler, Work
from onnxpy.serving.config import ModelSource
from onnxpy.serving.errors import ModelLoadError
from onnxpy.serving.grpc import inference_pb2 as pb
from onnxpy.serving.messages import InputTensor, RequestedOutput
from onnxpy.serving.metrics import ModelStats
from onnxpy.serving.warmup import warmup_feeds
from onnxpy.types import ELEM_TYPE_TO_DTYPE

__all__ = ["TensorSpec", "ModelVersion"]

log = logging.getLogger("onnxpy.serving")


@dataclass(frozen=True)
class TensorSpec:
    """An input or output as the v2 protocol shows it."""

    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 for a dimension of any size
    symbols: tuple[str | None, ...]  # dim_param names, to check that shared dims agree
    as_json: bool = False  # a non-tensor output served as BYTES of JSON

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _spec(arg: Any, what: str, model: str) -> TensorSpec:
    tp = arg._type_proto
    kind = tp.WhichOneof("value") if tp is not None else None
    if kind != "tensor_type":
        if what == "input":
            raise ModelLoadError(
                f"model '{model}': input '{arg.name}' is {arg.type}; the v2 protocol carries "
                "tensors only"
            )
        shape = (-1,) if kind == "sequence_type" else (1,)
        return TensorSpec(arg.name, "BYTES", shape, (None,) * len(shape), as_json=True)
    datatype = tensors.ELEM_TYPE_TO_V2.get(tp.tensor_type.elem_type)
    if datatype is None:
        raise ModelLoadError(
            f"model '{model}': {what} '{arg.name}' is {arg.type}, which has no v2 datatype"
        )
    if not tp.tensor_type.HasField("shape"):
        raise ModelLoadError(f"model '{model}': {what} '{arg.name}' declares no rank")
    dims = tp.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
    symbols = tuple(d.dim_param if d.HasField("dim_param") else None for d in dims)
    return TensorSpec(arg.name, datatype, shape, symbols)


def _jsonable(value: Any, float32: bool) -> Any:
    """Plain JSON values; Python floats of a float32 output go back to float32 so that they
    print as 0.1, not 0.10000000149011612."""
    if isinstance(value, dict):
        return {k: _jsonable(v, float32) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, float32) for v in value]
    if float32 and isinstance(value, float):
        return np.float32(value)
    return value


def json_output(value: Any, float32: bool = False) -> np.ndarray:
    """A non-tensor output as a BYTES array of JSON documents (see the module docstring)."""
    items = value if isinstance(value, list) else [value]
    out = np.empty(len(items), dtype=object)
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    out[:] = [orjson.dumps(_jsonable(v, float32), option=option).decode() for v in items]
    return out


class ModelVersion:
    """A loaded, checked and scheduled version of a model; see the module docstring."""

    def __init__(
        self, source: ModelSource, version: int, path: Path, config: pb.ModelConfig,
        stats: ModelStats, intra_op_threads: int = 0, default_queue_size: int = 0,
    ) -> None:  # fmt: skip
        import onnxpy

        self.name, self.version, self.path = source.name, version, path
        self.file_id: tuple = ()  # (size, mtime) of the file when loaded, to notice changes
        self.config = pb.ModelConfig()
        self.config.CopyFrom(config)
        self.stats = stats
        threads = config.parameters.get("intra_op_thread_count")
        options = onnxpy.SessionOptions()
        options.intra_op_num_threads = int(threads.string_value) if threads else intra_op_threads
        try:
            self.session = onnxpy.InferenceSession(str(path), sess_options=options)
        except Exception as e:
            raise ModelLoadError(f"model '{self.name}' version {version}: {e}") from e
        self.inputs = [_spec(a, "input", self.name) for a in self.session.get_inputs()]
        self.outputs = [_spec(a, "output", self.name) for a in self.session.get_outputs()]
        self._float32_json = {
            a.name for a in self.session.get_outputs() if a.type.endswith("tensor(float)))")
        }
        self._inputs = {s.name: s for s in self.inputs}
        self._outputs = {s.name: s for s in self.outputs}
        self._dtypes = {
            a.name: ELEM_TYPE_TO_DTYPE[a._type_proto.tensor_type.elem_type]
            for a in self.session.get_inputs()
        }
        self.max_batch_size = self.config.max_batch_size
        self._check_config(source)
        self.labels = self._read_labels(source)
        db = self.config.dynamic_batching if self.config.HasField("dynamic_batching") else None
        self._inflight = 0
        self._retired = False
        self._lock = threading.Condition()
        self.scheduler = Scheduler(
            self._run,
            name=f"{self.name}:{version}",
            instances=sum(g.count for g in self.config.instance_group) or 1,
            max_batch_size=self.max_batch_size if db is not None else 0,
            preferred_batch_sizes=list(db.preferred_batch_size) if db else (),
            max_queue_delay_us=db.max_queue_delay_microseconds if db else 0,
            max_queue_size=(db.default_queue_policy.max_queue_size if db else 0)
            or default_queue_size,
            record_batch=stats.record_batch,
            on_queue_change=stats.queued,
        )
        try:
            self._warm_up(source)
        except Exception:
            self.scheduler.close(timeout=5)
            raise

    # -- configuration --------------------------------------------------------------------------
    def _check_config(self, source: ModelSource) -> None:
        """Complete the config from the model (Triton's auto-complete) and check what it says."""
        batch = self.max_batch_size > 0
        where = f"model '{self.name}' ({source.config_path or self.path})"
        for spec in self.inputs + self.outputs:
            if batch and not spec.as_json and (not spec.shape or spec.shape[0] != -1):
                raise ModelLoadError(
                    f"{where}: max_batch_size {self.max_batch_size} needs a dynamic first "
                    f"dimension on every input and output, but '{spec.name}' has shape "
                    f"{list(spec.shape)}"
                )
        for declared, specs, what in (
            (self.config.input, self._inputs, "input"),
            (self.config.output, self._outputs, "output"),
        ):
            for entry in declared:
                spec = specs.get(entry.name)
                if spec is None:
                    raise ModelLoadError(
                        f"{where}: config {what} '{entry.name}' is not in the model; its "
                        f"{what}s are {list(specs)}"
                    )
                want = tensors.CONFIG_TO_V2.get(pb.DataType.Name(entry.data_type))
                if entry.data_type and want != spec.datatype:
                    raise ModelLoadError(
                        f"{where}: config says {what} '{entry.name}' is "
                        f"{pb.DataType.Name(entry.data_type)}, the model has {spec.datatype}"
                    )
                model_dims = spec.shape[1:] if batch else spec.shape
                dims = tuple(entry.dims)
                compatible = len(dims) == len(model_dims) and all(
                    d == m or d == -1 or m == -1 for d, m in zip(dims, model_dims)
                )
                if dims and not spec.as_json and not compatible:
                    raise ModelLoadError(
                        f"{where}: config dims {list(dims)} of {what} '{entry.name}' disagree "
                        f"with the model's {list(model_dims)}"
                        + (" (without the batch dimension)" if batch else "")
                    )
        if not self.config.input:
            for s in self.inputs:
                self.config.input.add(
                    name=s.name,
                    data_type=pb.DataType.Value(tensors.V2_TO_CONFIG[s.datatype]),
                    dims=list(s.shape[1:] if batch else s.shape),
                )
        if not self.config.output:
            for s in self.outputs:
                self.config.output.add(
                    name=s.name,
                    data_type=pb.DataType.Value(tensors.V2_TO_CONFIG[s.datatype]),
                    dims=list(s.shape[1:] if batch and not s.as_json else s.shape),
                )

    def _read_labels(self, source: ModelSource) -> dict[str, list[str]]:
        labels: dict[str, list[str]] = {}
        for entry in self.config.output:
            if not entry.label_filename:
                continue
            path = (source.folder / entry.label_filename).resolve()
            if source.folder.resolve() not in path.parents:
                raise ModelLoadError(
                    f"model '{self.name}': label_filename '{entry.label_filename}' is outside "
                    "the model's folder"
                )
            try:
                labels[entry.name] = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise ModelLoadError(f"model '{self.name}': cannot read labels: {e}") from e
        return labels

    def _warm_up(self, source: ModelSource) -> None:
        for entry in self.config.model_warmup:
            feeds = warmup_feeds(entry, self, source.folder)
            for _ in range(max(entry.count, 1)):
                try:
                    self._run(feeds, tuple(self._outputs))
                except Exception as e:
                    raise ModelLoadError(
                        f"model '{self.name}': warmup '{entry.name}' failed: {e}"
                    ) from e
            log.info("model '%s' version %d: warmup '%s' ran %d time(s)",
                     self.name, self.version, entry.name, max(entry.count, 1))  # fmt: skip

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [str(self.version)],
            "platform": "onnxruntime_onnx",
            "inputs": [s.metadata() for s in self.inputs],
            "outputs": [s.metadata() for s in self.outputs],
        }

    # -- lifetime: requests in flight hold the version; unloading waits for them -------------
    def acquire(self) -> bool:
        with self._lock:
            if self._retired:
                return False
            self._inflight += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._inflight -= 1
            if self._inflight == 0:
                self._lock.notify_all()

    def retire(self, timeout: float) -> None:
        """Refuse new requests, let those in flight finish, then stop the workers."""
        with self._lock:
            self._retired = True
            self._lock.wait_for(lambda: self._inflight == 0, timeout)
        self.scheduler.close(timeout)

    # -- requests -----------------------------------------------------------------------------
    def _known(self, specs: dict[str, TensorSpec], name: str, what: str) -> TensorSpec:
        spec = specs.get(name)
        if spec is None:
            raise InvalidArgument(
                f"unexpected {what} '{name}' for model '{self.name}'; its {what}s are {list(specs)}"
            )
        return spec

    def decode(self, inputs: list[InputTensor]) -> tuple[dict[str, np.ndarray], int]:
        """Check and decode the request's inputs; returns the feeds and the rows they hold."""
        feeds: dict[str, np.ndarray] = {}
        for t in inputs:
            spec = self._known(self._inputs, t.name, "input")
            if t.name in feeds:
                raise InvalidArgument(f"input '{t.name}' is given twice")
            if t.datatype != spec.datatype:
                raise InvalidArgument(
                    f"input '{t.name}' has datatype {t.datatype!r}, model '{self.name}' expects "
                    f"{spec.datatype}"
                )
            shape = tensors.check_shape(t.name, t.shape)
            if len(shape) != len(spec.shape) or any(
                m != -1 and d != m for d, m in zip(shape, spec.shape)
            ):
                raise InvalidArgument(
                    f"input '{t.name}' has shape {list(shape)}, model '{self.name}' expects "
                    f"{list(spec.shape)} (-1: any size)"
                )
            if t.raw is not None:
                array = tensors.decode_raw(t.name, t.datatype, shape, t.raw)
            elif t.data is not None:
                array = tensors.decode_json(t.name, t.datatype, shape, t.data)
            else:
                raise InvalidArgument(f"input '{t.name}' has no data")
            feeds[t.name] = self.coerce(t.name, array)
        missing = [n for n in self._inputs if n not in feeds]
        if missing:
            raise InvalidArgument(
                f"model '{self.name}' needs input(s) {missing}; the request gave {list(feeds)}"
            )
        self._check_shared_dims(feeds)
        rows = 1
        if self.max_batch_size > 0:
            rows = next(iter(feeds.values())).shape[0] if feeds else 1
            if rows > self.max_batch_size:
                raise InvalidArgument(
                    f"batch of {rows} rows is over model '{self.name}''s max_batch_size "
                    f"{self.max_batch_size}"
                )
        return feeds, rows

    def coerce(self, name: str, array: np.ndarray) -> np.ndarray:
        """The array in the input's own dtype (decoders give little-endian v2 dtypes)."""
        want = self._dtypes[name]
        return array if array.dtype == want else array.astype(want)

    def _check_shared_dims(self, feeds: dict[str, np.ndarray]) -> None:
        seen: dict[str, tuple[str, int]] = {}
        for spec in self.inputs:
            for symbol, size in zip(spec.symbols, feeds[spec.name].shape):
                if symbol is None:
                    continue
                first = seen.setdefault(symbol, (spec.name, size))
                if first[1] != size:
                    raise InvalidArgument(
                        f"dimension '{symbol}' is {first[1]} in input '{first[0]}' but {size} in "
                        f"input '{spec.name}'"
                    )
        if self.max_batch_size > 0:
            sizes = {name: a.shape[0] for name, a in feeds.items()}
            if len(set(sizes.values())) > 1:
                raise InvalidArgument(f"inputs disagree on the batch size: {sizes}")

    def output_names(self, requested: list[RequestedOutput]) -> tuple[str, ...]:
        """The outputs to compute, checked: unknown or repeated names are refused."""
        if not requested:
            return tuple(self._outputs)
        names: list[str] = []
        for r in requested:
            spec = self._known(self._outputs, r.name, "output")
            if r.name in names:
                raise InvalidArgument(f"output '{r.name}' is requested twice")
            if r.class_count < 0:
                raise InvalidArgument(f"output '{r.name}': classification count must be >= 0")
            if r.class_count and (spec.as_json or spec.datatype in ("BYTES", "BOOL")):
                raise InvalidArgument(f"output '{r.name}' ({spec.datatype}) cannot be classified")
            names.append(r.name)
        return tuple(names)

    def work(self, feeds: dict[str, np.ndarray], rows: int, outputs: tuple[str, ...]) -> Work:
        key = (tuple((n, a.dtype.str, a.shape[1:]) for n, a in feeds.items()), outputs)
        return Work(feeds=feeds, outputs=outputs, rows=rows, key=key)

    def _run(self, feeds: dict[str, Any], outputs: Any) -> list[Any]:
        return self.session.run(list(outputs), feeds)

    def finish(self, name: str, value: Any, class_count: int) -> tuple[str, np.ndarray]:
        """An output value as (v2 datatype, array): JSON for non-tensors, top-k if asked."""
        if self._outputs[name].as_json:
            return "BYTES", json_output(value, name in self._float32_json)
        if class_count:
            return "BYTES", classify(value, class_count, self.labels.get(name))
        return tensors.datatype_of(value), value


def classify(value: np.ndarray, count: int, labels: list[str] | None) -> np.ndarray:
    """Triton's classification extension: the top ``count`` entries as "value:index[:label]".

    A rank-1 output is one classification (shape [count]); a larger rank is one per entry of the
    first (batch) dimension over the rest (shape [rows, count]). Ties keep the lower index.
    """
    flat = value.reshape(1, -1) if value.ndim <= 1 else value.reshape(value.shape[0], -1)
    k = min(count, flat.shape[1])
    order = np.argsort(-flat.astype(np.float64), axis=1, kind="stable")[:, :k]
    out = np.empty(order.shape, dtype=object)
    is_float = value.dtype.kind == "f"
    for r in range(order.shape[0]):
        for j, idx in enumerate(order[r]):
            v = flat[r, idx]
            text = f"{float(v):f}:{int(idx)}" if is_float else f"{int(v)}:{int(idx)}"
            if labels is not None and idx < len(labels):
                text += f":{labels[idx]}"
            out[r, j] = text
    return out.reshape(k) if value.ndim <= 1 else out
