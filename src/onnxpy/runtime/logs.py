"""onnxpy's log, with onnxruntime's switches: severity, verbosity, a callback, telemetry.

Messages go to the standard ``logging`` logger named ``onnxpy`` (so ordinary logging
configuration works too). onnxruntime's severities map onto logging levels: 0 verbose (DEBUG),
1 info, 2 warning (the default), 3 error, 4 fatal (CRITICAL). A callback installed with
:func:`set_default_logger_callback` receives each message as onnxruntime's does:
``callback(severity, category, logid, code_location, message)``; an exception it raises is
swallowed, never the caller's problem. onnxpy sends no telemetry, so the telemetry switches only
record the choice.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from onnxpy.errors import RuntimeException

__all__ = [
    "disable_telemetry_events",
    "enable_telemetry_events",
    "log",
    "set_default_logger_callback",
    "set_default_logger_severity",
    "set_default_logger_verbosity",
    "telemetry_enabled",
]

if TYPE_CHECKING:
    import logging


class _Log:
    """The ``onnxpy`` logger, with ``logging`` imported when it is first needed (~2.5 ms of
    ``import onnxpy`` otherwise). Debug and info messages are dropped while ``logging`` has not
    been imported by anyone: then nothing can have configured a handler or a level that shows
    them (the default shows warnings and above)."""

    _logger: logging.Logger | None = None

    def logger(self) -> logging.Logger:
        if self._logger is None:
            import logging

            _Log._logger = logging.getLogger("onnxpy")
        return self._logger  # type: ignore[return-value]

    def debug(self, *args: Any, **kwargs: Any) -> None:
        if "logging" in sys.modules:
            self.logger().debug(*args, **kwargs)

    def info(self, *args: Any, **kwargs: Any) -> None:
        if "logging" in sys.modules:
            self.logger().info(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.logger(), name)


log = _Log()
# onnxruntime's severities 0..4 as logging levels (DEBUG, INFO, WARNING, ERROR, CRITICAL)
_LEVELS = (10, 20, 30, 40, 50)
_state: dict[str, Any] = {"verbosity": 0, "telemetry": False, "handler": None}


def _severity(level: Any) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 4:
        raise RuntimeException(
            f"Invalid logging severity {level!r}: expected 0 (verbose), 1 (info), 2 (warning), "
            "3 (error) or 4 (fatal)"
        )
    return level


def set_default_logger_severity(severity: int) -> None:
    """Show messages of ``severity`` and above (0 verbose ... 4 fatal; default 2)."""
    log.setLevel(_LEVELS[_severity(severity)])


def set_default_logger_verbosity(verbosity: int) -> None:
    """Verbosity of verbose messages (recorded; onnxpy has one verbose level)."""
    _state["verbosity"] = int(verbosity)


def _callback_handler(callback: Callable[..., Any]) -> logging.Handler:
    import logging

    class _CallbackHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            severity = min(4, max(0, record.levelno // 10 - 1))
            where = f"{record.filename}:{record.lineno} {record.funcName}"
            logid = str(getattr(record, "logid", ""))
            try:
                callback(severity, "onnxpy", logid, where, record.getMessage())
            except Exception:  # noqa: BLE001 - a failing callback must not break the caller
                pass

    return _CallbackHandler(logging.DEBUG)


def set_default_logger_callback(callback: Callable[..., Any] | None, severity: int = 2) -> None:
    """Send every message of ``severity`` and above to ``callback`` (None: stop doing so)."""
    old = _state["handler"]
    if callback is None:
        if old is not None:
            log.removeHandler(old)
            _state["handler"] = None
        return
    if not callable(callback):
        raise RuntimeException(f"The logging callback must be callable, got {type(callback)}")
    set_default_logger_severity(severity)
    if old is not None:
        log.removeHandler(old)
    handler = _callback_handler(callback)
    _state["handler"] = handler
    log.addHandler(handler)


def enable_telemetry_events() -> None:
    """Accepted for compatibility; onnxpy collects and sends no telemetry."""
    _state["telemetry"] = True


def disable_telemetry_events() -> None:
    _state["telemetry"] = False


def telemetry_enabled() -> bool:
    return bool(_state["telemetry"])
