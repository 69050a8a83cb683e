"""Model changes requested through SessionOptions, recorded until a session applies them.

The SessionOptions methods ``add_initializer``, ``add_external_initializers``,
``add_external_initializers_from_files_in_memory`` and ``add_free_dimension_override_by_*``
record here; runtime/session_setup.py applies the record when a session is created.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ModelOverrides", "overrides_of"]


class ModelOverrides:
    """Model changes requested through SessionOptions, applied when a session is created.

    (A plain class, like the runtime's other records on the import path: each dataclass
    costs ~0.5 ms of ``import onnxpy``.)"""

    __slots__ = (
        "initializers",
        "external_initializers",
        "external_files",
        "dims_by_name",
        "dims_by_denotation",
    )

    def __init__(
        self,
        initializers: dict[str, np.ndarray] | None = None,
        external_initializers: dict[str, np.ndarray] | None = None,
        external_files: dict[str, memoryview] | None = None,
        dims_by_name: dict[str, int] | None = None,
        dims_by_denotation: dict[str, int] | None = None,
    ) -> None:
        self.initializers = {} if initializers is None else initializers
        self.external_initializers = {} if external_initializers is None else external_initializers
        self.external_files = {} if external_files is None else external_files
        self.dims_by_name = {} if dims_by_name is None else dims_by_name
        self.dims_by_denotation = {} if dims_by_denotation is None else dims_by_denotation

    def empty(self) -> bool:
        return not any(
            (
                self.initializers,
                self.external_initializers,
                self.external_files,
                self.dims_by_name,
                self.dims_by_denotation,
            )
        )

    def copy(self) -> ModelOverrides:
        return ModelOverrides(
            dict(self.initializers),
            dict(self.external_initializers),
            dict(self.external_files),
            dict(self.dims_by_name),
            dict(self.dims_by_denotation),
        )


def overrides_of(options: Any) -> ModelOverrides:
    """The overrides recorded on a SessionOptions (created on first use)."""
    found = options.__dict__.get("_model_overrides")
    if found is None:
        found = options.__dict__["_model_overrides"] = ModelOverrides()
    return found
