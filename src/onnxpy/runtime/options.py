"""SessionOptions, RunOptions and the enums, with onnxruntime's names and defaults."""

from __future__ import annotations

import enum
import threading

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
            from onnxpy.errors import InvalidArgument

            raise InvalidArgument(f"SessionOptions has no config entry '{key}'")
        return self._config[key]

    def copy(self) -> SessionOptions:
        new = SessionOptions()
        new.__dict__.update(self.__dict__)
        new._config = dict(self._config)
        return new


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
