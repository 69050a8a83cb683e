"""SessionOptions, RunOptions and the enums, with onnxruntime's names and defaults."""

from __future__ import annotations

import enum
import threading
from collections.abc import Sequence
from typing import Any

from onnxpy.errors import InvalidArgument
from onnxpy.runtime.model_overrides import overrides_of

__all__ = ["GraphOptimizationLevel", "ExecutionMode", "SessionOptions", "RunOptions"]


class GraphOptimizationLevel(enum.IntEnum):
    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_LAYOUT = 3
    ORT_ENABLE_ALL = 99


class ExecutionMode(enum.IntEnum):
    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


class _Closed:
    """Attributes are those ``__init__`` sets: a misspelt option raises AttributeError, as in
    onnxruntime, instead of being silently ignored."""

    _known: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: object) -> None:
        known = type(self)._known
        if (
            known
            and name not in known
            and not isinstance(getattr(type(self), name, None), property)
        ):
            raise AttributeError(
                f"'{type(self).__name__}' object has no attribute '{name}'"
                + _did_you_mean(name, known)
            )
        object.__setattr__(self, name, value)

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        init = cls.__init__

        def __init__(self, *args, **kwargs):
            init(self, *args, **kwargs)
            if not type(self)._known:
                type(self)._known = frozenset(self.__dict__)

        cls.__init__ = __init__


def _did_you_mean(name: str, known: frozenset[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, [k for k in known if not k.startswith("_")], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class SessionOptions(_Closed):
    """Options read once when a session is created (later changes do not affect it)."""

    def __init__(self) -> None:
        self.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0
        self.execution_mode = ExecutionMode.ORT_SEQUENTIAL
        self.enable_profiling = False
        self.profile_file_prefix = "onnxpy_profile"
        self.optimized_model_filepath = ""
        self.log_severity_level = 2
        self.log_verbosity_level = 0
        self.logid = ""
        self.enable_mem_pattern = True
        self.enable_cpu_mem_arena = True
        self.use_deterministic_compute = False
        self._config: dict[str, str] = {}

    def add_session_config_entry(self, key: str, value: str) -> None:
        self._config[str(key)] = str(value)

    def get_session_config_entry(self, key: str) -> str:
        if key not in self._config:
            # onnxruntime raises RuntimeError here; RuntimeException is one (and an onnxpy error).
            from onnxpy.errors import RuntimeException

            raise RuntimeException(f"SessionOptions does not have configuration with key: {key}")
        return self._config[key]

    def copy(self) -> SessionOptions:
        new = SessionOptions()
        new.__dict__.update(self.__dict__)
        new._config = dict(self._config)
        if "_model_overrides" in self.__dict__:
            new.__dict__["_model_overrides"] = self.__dict__["_model_overrides"].copy()
        return new

    # -- onnxruntime's model-changing options (issue 16); applied by runtime/session_setup.py ----
    def add_initializer(self, name: str, ortvalue: Any) -> None:
        """Use ``ortvalue`` (an OrtValue or array) instead of the model's initializer ``name``."""
        overrides_of(self).initializers[str(name)] = _host_array(ortvalue, "add_initializer")

    def add_external_initializers(self, names: Sequence[str], ortvalues: Sequence[Any]) -> None:
        """Supply the data of initializers the model keeps in external files."""
        if len(names) != len(ortvalues):
            raise InvalidArgument("add_external_initializers needs as many values as names")
        target = overrides_of(self).external_initializers
        for name, value in zip(names, ortvalues):
            target[str(name)] = _host_array(value, "add_external_initializers")

    def add_external_initializers_from_files_in_memory(
        self, file_names: Sequence[str], buffers: Sequence[Any], lengths: Sequence[int]
    ) -> None:
        """Supply the contents of external data files (by the file name the model records)."""
        if not len(file_names) == len(buffers) == len(lengths):
            raise InvalidArgument(
                "add_external_initializers_from_files_in_memory needs one buffer and one length "
                "per file name"
            )
        files = overrides_of(self).external_files
        for name, buffer, length in zip(file_names, buffers, lengths):
            view = memoryview(buffer).cast("B")
            if int(length) > len(view):
                raise InvalidArgument(
                    f"Buffer for '{name}' has {len(view)} bytes, fewer than its length {length}"
                )
            files[str(name)] = view[: int(length)]

    def add_free_dimension_override_by_name(self, dim_name: str, dim_value: int) -> None:
        """Fix the free dimension called ``dim_name`` to ``dim_value`` in this session."""
        overrides_of(self).dims_by_name[str(dim_name)] = _dim(dim_value)

    def add_free_dimension_override_by_denotation(
        self, dim_denotation: str, dim_value: int
    ) -> None:
        """Fix free dimensions denoted ``dim_denotation`` (e.g. DATA_BATCH) to ``dim_value``."""
        overrides_of(self).dims_by_denotation[str(dim_denotation)] = _dim(dim_value)

    def register_custom_ops_library(self, library_path: str) -> None:
        """Native custom-op libraries cannot load into onnxpy: register Python kernels instead."""
        from onnxpy import errors

        raise errors.NotImplemented(
            f"Cannot load native custom-op library '{library_path}': onnxpy runs Python kernels. "
            "Register the operator's kernel with onnxpy.register_op(domain, op_type, fn)."
        )


class RunOptions(_Closed):
    """Per-call options. ``terminate = True`` from another thread stops a running call."""

    def __init__(self) -> None:
        self.log_severity_level = 2
        self.log_verbosity_level = 0
        self.logid = ""
        self.run_tag = ""
        self.only_execute_path_to_fetches = False
        self._terminate = threading.Event()
        self._config: dict[str, str] = {}

    @property
    def terminate(self) -> bool:
        return self._terminate.is_set()

    @terminate.setter
    def terminate(self, value: bool) -> None:
        if value:
            self._terminate.set()
        else:
            self._terminate.clear()

    def add_run_config_entry(self, key: str, value: str) -> None:
        self._config[str(key)] = str(value)

    def get_run_config_entry(self, key: str) -> str:
        return self._config[key]

    # -- onnxruntime API addition (issue 16) ------------------------------------------------
    def add_active_adapter(self, adapter: Any) -> None:
        """Feed a LoraAdapter's tensors to runs made with these options (runtime/lora.py)."""
        from onnxpy.runtime.lora import LoraAdapter

        if not isinstance(adapter, LoraAdapter):
            raise InvalidArgument(f"add_active_adapter needs a LoraAdapter, got {type(adapter)}")
        self.__dict__.setdefault("_active_adapters", []).append(adapter)


def _host_array(value: Any, what: str) -> Any:
    """The NumPy array behind an OrtValue (or array) given to the SessionOptions."""
    from onnxpy.runtime.ortvalue import OrtValue, as_host_array

    if isinstance(value, OrtValue):
        if not value.is_tensor():
            raise InvalidArgument(f"{what}: expected a tensor OrtValue, got {value.data_type()}")
        return value.numpy()
    try:
        return as_host_array(value)
    except InvalidArgument:
        raise
    except Exception as e:  # noqa: BLE001 - anything numpy cannot read as a tensor
        raise InvalidArgument(f"{what}: expected an OrtValue or array ({e})") from e


def _dim(value: int) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 0:
        raise InvalidArgument(f"A dimension override must be a non-negative integer, got {value!r}")
    return int(value)
