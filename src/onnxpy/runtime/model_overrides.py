"""Model changes requested through SessionOptions, recorded until a session applies them.

The SessionOptions methods ``add_initializer``, ``add_external_initializers``,
``add_external_initializers_from_files_in_memory`` and ``add_free_dimension_override_by_*``
record here; runtime/session_setup.py applies the record when a session is created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ModelOverrides", "overrides_of"]


@dataclass
class ModelOverrides:
    """Model changes requested through SessionOptions, applied when a session is created."""

    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    external_initializers: dict[str, np.ndarray] = field(default_factory=dict)
    external_files: dict[str, memoryview] = field(default_factory=dict)
    dims_by_name: dict[str, int] = field(default_factory=dict)
    dims_by_denotation: dict[str, int] = field(default_factory=dict)

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
