"""IOBinding: inputs and outputs bound to memory ahead of ``run_with_iobinding``.

Clients such as Hugging Face optimum bind inputs and preallocated outputs by address (torch
tensors' ``data_ptr()``), then run. On the CPU that is ordinary host memory: a bound input is
read through a NumPy view of the caller's buffer, and a result is written into the bound output
buffer (which must have the result's shape and type, as onnxruntime requires). An output bound
by device only gets the session's result. Binding a device other than the CPU is refused.

The caller keeps bound buffers alive until the run, as with onnxruntime.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxpy.errors import InvalidArgument
from onnxpy.runtime.devices import OrtDevice, require_cpu
from onnxpy.runtime.ortvalue import OrtValue, OrtValueVector, as_host_array, numpy_dtype_of

if TYPE_CHECKING:
    from onnxpy.runtime.options import RunOptions

__all__ = ["IOBinding", "SessionIOBinding", "view_of_address"]


def view_of_address(address: int, element_type: Any, shape: Sequence[int]) -> np.ndarray:
    """A writable NumPy array over ``shape`` elements at host address ``address``."""
    dtype = numpy_dtype_of(element_type)
    if dtype.kind == "O":
        raise InvalidArgument("String tensors cannot be bound by address; bind an array instead")
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise InvalidArgument(f"Bound shape {list(dims)} has a negative dimension")
    count = int(np.prod(dims, dtype=np.int64))
    if count == 0:
        return np.empty(dims, dtype=dtype)
    if not address:
        raise InvalidArgument("Cannot bind a null buffer address")
    raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(int(address))
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(dims)


def _device_name(device_type: Any) -> str:
    return device_type.name() if isinstance(device_type, OrtDevice) else str(device_type)


class IOBinding:
    """Bindings of one session: ``session.io_binding()`` or ``IOBinding(session)``."""

    def __init__(self, session: Any) -> None:
        session = getattr(session, "_onnxpy_session", session)
        if not hasattr(session, "run_with_iobinding"):
            raise InvalidArgument(f"IOBinding needs an InferenceSession, got {type(session)}")
        self._session = session
        self._inputs: dict[str, OrtValue] = {}
        # name -> (preallocated destination or None, its OrtValue, whether the caller gave it)
        self._outputs: dict[str, tuple[np.ndarray | None, OrtValue, bool]] = {}

    # -- inputs --------------------------------------------------------------------------------
    def bind_cpu_input(self, name: str, arr_on_cpu: Any) -> None:
        """Bind an array (read at run time, not copied now)."""
        self._inputs[name] = OrtValue.ortvalue_from_numpy(arr_on_cpu)

    def bind_input(
        self,
        name: str,
        device_type: str | OrtDevice,
        device_id: int,
        element_type: Any,
        shape: Sequence[int],
        buffer_ptr: int,
    ) -> None:
        """Bind ``shape`` elements of ``element_type`` at host address ``buffer_ptr``."""
        require_cpu(device_type, f"IOBinding.bind_input('{name}')")
        self._inputs[name] = OrtValue._wrap(view_of_address(buffer_ptr, element_type, shape))

    def bind_ortvalue_input(self, name: str, ortvalue: OrtValue) -> None:
        if not isinstance(ortvalue, OrtValue):
            raise InvalidArgument(f"bind_ortvalue_input needs an OrtValue, got {type(ortvalue)}")
        self._inputs[name] = ortvalue

    def synchronize_inputs(self) -> None:
        """Nothing to wait for: CPU memory is written before the call returns."""

    def clear_binding_inputs(self) -> None:
        self._inputs.clear()

    # -- outputs -------------------------------------------------------------------------------
    def bind_output(
        self,
        name: str,
        device_type: str | OrtDevice = "cpu",
        device_id: int = 0,
        element_type: Any = None,
        shape: Sequence[int] | None = None,
        buffer_ptr: int | None = None,
    ) -> None:
        """Bind output ``name`` to a device (the session allocates) or to a buffer address."""
        require_cpu(device_type, f"IOBinding.bind_output('{name}')")
        if buffer_ptr is None:
            self._outputs[name] = (None, OrtValue(), False)
            return
        if element_type is None or shape is None:
            raise InvalidArgument(
                f"bind_output('{name}') with a buffer_ptr needs element_type and shape"
            )
        buffer = view_of_address(buffer_ptr, element_type, shape)
        self._outputs[name] = (buffer, OrtValue._wrap(buffer), False)

    def bind_ortvalue_output(self, name: str, ortvalue: OrtValue) -> None:
        """Write output ``name`` into ``ortvalue``'s tensor (or into it if it is empty)."""
        if not isinstance(ortvalue, OrtValue):
            raise InvalidArgument(f"bind_ortvalue_output needs an OrtValue, got {type(ortvalue)}")
        buffer = ortvalue.numpy() if ortvalue.is_tensor() else None
        self._outputs[name] = (buffer, ortvalue, True)

    def synchronize_outputs(self) -> None:
        """Nothing to wait for: results are in place when the run returns."""

    def clear_binding_outputs(self) -> None:
        self._outputs.clear()

    def get_outputs(self) -> list[OrtValue]:
        """The bound outputs' values (after a run: its results), in binding order."""
        return [value for _, value, _ in self._outputs.values()]

    def get_outputs_as_ortvaluevector(self) -> OrtValueVector:
        return OrtValueVector.of(self.get_outputs())

    def copy_outputs_to_cpu(self) -> list[Any]:
        """Copies of the outputs as NumPy arrays (lists and dicts for sequences and maps)."""
        out = []
        for value in self.get_outputs():
            held = value._value
            out.append(np.array(held, copy=True) if isinstance(held, np.ndarray) else held)
        return out

    # -- what the session reads and writes -----------------------------------------------------
    def _feeds(self) -> dict[str, Any]:
        return {name: value._value for name, value in self._inputs.items()}

    def _output_names(self) -> list[str]:
        return list(self._outputs)

    def _store(self, names: Sequence[str], results: Sequence[Any], types: dict[str, str]) -> None:
        for name, result in zip(names, results):
            buffer, value, given = self._outputs[name]
            if buffer is None:
                if given:  # the caller's empty OrtValue receives the result
                    value._value, value._type = result, types.get(name)
                else:  # a new OrtValue per run, so earlier get_outputs() lists stay as they were
                    self._outputs[name] = (None, OrtValue._wrap(result, types.get(name)), False)
                continue
            produced = as_host_array(result)
            if produced.shape != buffer.shape or produced.dtype != buffer.dtype:
                raise InvalidArgument(
                    f"The buffer bound for output '{name}' is {buffer.dtype} "
                    f"{list(buffer.shape)} but this run computed {produced.dtype} "
                    f"{list(produced.shape)}; bind a matching buffer, or bind by device only"
                )
            np.copyto(buffer, produced)

    # onnxruntime's wrapper keeps the binding object as ``_iobinding``.
    @property
    def _iobinding(self) -> IOBinding:
        return self

    def run(self, run_options: RunOptions | None = None) -> None:
        """Run the session on these bindings (as ``session.run_with_iobinding(self)``)."""
        self._session.run_with_iobinding(self, run_options)


SessionIOBinding = IOBinding
