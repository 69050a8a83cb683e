"""The rest of onnxruntime's InferenceSession API, built on the session's own ``run``.

:class:`OrtSessionApi` is a mixin of InferenceSession (runtime/session.py): OrtValue and
IOBinding runs, ``run_async`` (the callback runs on a worker thread), provider changes, and the
introspection onnxruntime offers about devices, memory and provider assignment. None of it
computes anything itself: every path ends in ``self.run``. ``session._sess`` is the low-level
view of the same session that onnxruntime's own tests and wrappers call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from onnxpy.errors import Fail, InvalidArgument, RuntimeException
from onnxpy.providers import get_all_providers, resolve_providers

if TYPE_CHECKING:  # imported where used: a session that never meets them does not load them
    from concurrent.futures import ThreadPoolExecutor

    from onnxpy.runtime.devices import OrtEpDevice, OrtMemoryInfo
    from onnxpy.runtime.iobinding import IOBinding
    from onnxpy.runtime.ortvalue import OrtValue, OrtValueVector

__all__ = ["OrtEpAssignedNode", "OrtEpAssignedSubgraph", "OrtSessionApi"]

_RECORD_ASSIGNMENT = "session.record_ep_graph_assignment_info"
_async_lock = threading.Lock()
_async_pool: list[ThreadPoolExecutor] = []


def _async_executor() -> ThreadPoolExecutor:
    from concurrent.futures import ThreadPoolExecutor

    with _async_lock:
        if not _async_pool:
            _async_pool.append(ThreadPoolExecutor(4, thread_name_prefix="onnxpy-run-async"))
        return _async_pool[0]


class _Record:
    """A small value record compared field by field (hand-written: dataclasses compile their
    methods at import, ~0.5 ms each of ``import onnxpy``)."""

    __slots__ = ()

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__)
        return f"{type(self).__name__}({args})"


class OrtEpAssignedNode(_Record):
    """A node of the optimized graph and the provider that runs it."""

    __slots__ = ("name", "domain", "op_type")

    def __init__(self, name: str, domain: str, op_type: str) -> None:
        self.name = name
        self.domain = domain
        self.op_type = op_type


class OrtEpAssignedSubgraph(_Record):
    """Nodes assigned to one execution provider."""

    __slots__ = ("ep_name", "nodes")

    def __init__(self, ep_name: str, nodes: tuple[OrtEpAssignedNode, ...]) -> None:
        self.ep_name = ep_name
        self.nodes = nodes

    def get_nodes(self) -> list[OrtEpAssignedNode]:
        return list(self.nodes)


def _feeds_from_ortvalues(feeds: dict[str, Any], what: str) -> dict[str, Any]:
    from onnxpy.runtime.ortvalue import OrtValue

    if not isinstance(feeds, dict):
        raise InvalidArgument(f"{what}: feeds must be a dict of name -> OrtValue")
    out = {}
    for name, value in feeds.items():
        if not isinstance(value, OrtValue):
            raise InvalidArgument(
                f"{what}: input '{name}' must be an OrtValue, got {type(value).__name__}"
            )
        out[name] = value._value
    return out


class OrtSessionApi:
    """OrtValue, IOBinding and async runs, providers and introspection for InferenceSession."""

    # Provided by InferenceSession.
    run: Callable[..., list[Any]]
    get_inputs: Callable[[], list[Any]]
    get_outputs: Callable[[], list[Any]]
    _options: Any
    _providers: list[str]
    _provider_options: list[dict[str, str]]
    _graph: Any

    def _output_types(self) -> dict[str, str]:
        return {arg.name: arg.type for arg in self.get_outputs()}

    def _wrap_outputs(self, names: Sequence[str] | None, results: list[Any]) -> list[OrtValue]:
        from onnxpy.runtime.ortvalue import OrtValue

        names = list(names) if names else [a.name for a in self.get_outputs()]
        types = self._output_types()
        return [OrtValue._wrap(r, types.get(n)) for n, r in zip(names, results)]

    # -- runs on OrtValues and bindings --------------------------------------------------------
    def run_with_ort_values(
        self,
        output_names: Sequence[str] | None,
        input_dict_ort_values: dict[str, OrtValue],
        run_options: Any = None,
    ) -> list[OrtValue]:
        """``run`` with OrtValue feeds, returning OrtValues (no copies either way)."""
        feeds = _feeds_from_ortvalues(input_dict_ort_values, "run_with_ort_values")
        return self._wrap_outputs(output_names, self.run(output_names, feeds, run_options))

    def run_with_ortvaluevector(
        self,
        run_options: Any,
        feed_names: Sequence[str],
        feeds: Sequence[OrtValue],
        fetch_names: Sequence[str],
        fetches: OrtValueVector,
        fetch_devices: Sequence[Any] | None = None,
    ) -> None:
        """Run on parallel name/value lists; results replace the contents of ``fetches``."""
        if len(feed_names) != len(feeds):
            raise InvalidArgument(f"{len(feed_names)} feed names for {len(feeds)} feed values")
        values = _feeds_from_ortvalues(dict(zip(feed_names, feeds)), "run_with_ortvaluevector")
        results = self.run(list(fetch_names), values, run_options)
        fetches.clear()
        fetches.extend(self._wrap_outputs(fetch_names, results))

    def io_binding(self) -> IOBinding:
        from onnxpy.runtime.iobinding import IOBinding

        return IOBinding(self)

    def run_with_iobinding(self, iobinding: IOBinding, run_options: Any = None) -> None:
        """Run on the binding's inputs; results go to its bound outputs."""
        names = iobinding._output_names()
        if not names:
            raise InvalidArgument("run_with_iobinding: no output is bound; bind at least one")
        results = self.run(names, iobinding._feeds(), run_options)
        iobinding._store(names, results, self._output_types())

    def run_async(
        self,
        output_names: Sequence[str] | None,
        input_feed: dict[str, Any],
        callback: Callable[[list[Any], Any, str], None],
        user_data: Any,
        run_options: Any = None,
    ) -> None:
        """Start ``run`` on a worker thread; ``callback(results, user_data, error)`` follows
        there (``error`` is '' on success; on failure ``results`` is empty)."""
        if not callable(callback):
            raise TypeError(f"run_async needs a callable callback, got {type(callback).__name__}")
        feeds = dict(input_feed)

        def task() -> None:
            try:
                results, error = self.run(output_names, feeds, run_options), ""
            except Exception as e:  # noqa: BLE001 - reported to the callback, as onnxruntime does
                results, error = [], str(e) or type(e).__name__
            try:
                callback(results, user_data, error)
            except Exception:  # noqa: BLE001 - nobody is left to raise to
                from onnxpy.runtime.logs import log

                log.exception("run_async callback raised")

        _async_executor().submit(task)

    # -- providers -----------------------------------------------------------------------------
    def set_providers(
        self, providers: Sequence[Any] | None = None, provider_options: Sequence[dict] | None = None
    ) -> None:
        """Choose the session's providers again (unknown names raise; unavailable fall back)."""
        known = get_all_providers()
        for p in providers or []:
            name = p[0] if isinstance(p, (tuple, list)) else p
            if name not in known:
                raise RuntimeException(f"Unknown Provider Type: {name}")
        self._providers, self._provider_options = resolve_providers(providers, provider_options)

    def disable_fallback(self) -> None:
        """Accepted: the CPU provider is the only one, so there is nothing to fall back from."""

    def enable_fallback(self) -> None:
        """Accepted (see disable_fallback)."""

    def get_provider_graph_assignment_info(self) -> list[OrtEpAssignedSubgraph]:
        """One entry per node of the optimized graph, all on CPUExecutionProvider."""
        if self._options._config.get(_RECORD_ASSIGNMENT) != "1":
            raise Fail(
                f"Session configuration entry '{_RECORD_ASSIGNMENT}' must be set to \"1\" to "
                "retrieve EP graph assignment information"
            )
        return [
            OrtEpAssignedSubgraph(
                "CPUExecutionProvider", (OrtEpAssignedNode(n.name, n.domain, n.op_type),)
            )
            for n in self._graph.node
        ]

    def get_tuning_results(self) -> list[dict[str, Any]]:
        """onnxpy does no kernel tuning: there are no results."""
        return []

    def set_tuning_results(
        self, results: Sequence[dict], *, error_on_invalid: bool = False
    ) -> None:
        if results and error_on_invalid:
            raise RuntimeException("onnxpy does no kernel tuning; there are no results to load")

    # -- devices and memory --------------------------------------------------------------------
    def get_input_memory_infos(self) -> list[OrtMemoryInfo]:
        from onnxpy.runtime.devices import cpu_memory_info

        arena = bool(self._options.enable_cpu_mem_arena)
        return [cpu_memory_info(arena) for _ in self.get_inputs()]

    def get_output_memory_infos(self) -> list[OrtMemoryInfo]:
        from onnxpy.runtime.devices import cpu_memory_info

        arena = bool(self._options.enable_cpu_mem_arena)
        return [cpu_memory_info(arena) for _ in self.get_outputs()]

    def get_input_epdevices(self) -> list[OrtEpDevice]:
        from onnxpy.runtime.devices import cpu_ep_device

        return [cpu_ep_device() for _ in self.get_inputs()]

    @property
    def _sess(self) -> SessionCore:
        return SessionCore(self)


class SessionCore:
    """onnxruntime's low-level session spelling (``session._sess``) over the same session."""

    def __init__(self, session: Any) -> None:
        self._onnxpy_session = session

    def run(self, output_names: Any, input_feed: dict, run_options: Any = None) -> list[Any]:
        return self._onnxpy_session.run(output_names, input_feed, run_options)

    def run_with_ort_values(
        self, feeds: dict[str, OrtValue], output_names: Sequence[str], run_options: Any = None
    ) -> OrtValueVector:
        from onnxpy.runtime.ortvalue import OrtValueVector

        return OrtValueVector.of(
            self._onnxpy_session.run_with_ort_values(output_names, feeds, run_options)
        )

    def run_with_ortvaluevector(self, *args: Any) -> None:
        self._onnxpy_session.run_with_ortvaluevector(*args)

    def run_with_iobinding(self, iobinding: IOBinding, run_options: Any = None) -> None:
        self._onnxpy_session.run_with_iobinding(iobinding, run_options)

    def get_providers(self) -> list[str]:
        return self._onnxpy_session.get_providers()

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        return self._onnxpy_session.get_provider_options()

    @property
    def inputs_meta(self) -> list[Any]:
        return self._onnxpy_session.get_inputs()

    @property
    def outputs_meta(self) -> list[Any]:
        return self._onnxpy_session.get_outputs()

    @property
    def overridable_initializers(self) -> list[Any]:
        return self._onnxpy_session.get_overridable_initializers()

    @property
    def model_meta(self) -> Any:
        return self._onnxpy_session.get_modelmeta()

    @property
    def session_options(self) -> Any:
        return self._onnxpy_session.get_session_options()

    def end_profiling(self) -> str:
        return self._onnxpy_session.end_profiling()

    def get_profiling_start_time_ns(self) -> int:
        return self._onnxpy_session.get_profiling_start_time_ns()
