"""The common ``run``, prepared once per session: every output, no RunOptions, a dict holding
exactly the inputs that must be fed.

``InferenceSession.run`` spends most of a small model's time outside its kernels (a 1-node
logistic regression: ~4 of 12 us): argument checks, the plan lookup, the missing-input scan,
a dict walk over the feeds. Here the inputs' slots and compiled checks are a tuple made at
session creation, and whatever does not fit this case (other outputs, RunOptions, missing,
extra or overridable feeds) returns None so that the general path handles it, with its errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from onnxpy.runtime.feeds import FeedCheck
from onnxpy.runtime.outputs import detach_outputs
from onnxpy.runtime.plan import Plan

__all__ = ["default_run"]


def default_run(
    plan: Plan, protected: frozenset[int], checks: dict[str, FeedCheck]
) -> Callable[[dict[str, Any]], list[Any] | None]:
    """``run(feeds)`` -> the outputs, or None when ``feeds`` is not exactly the plan's
    required inputs (the caller then takes the general path)."""
    required = tuple(plan.required_inputs)
    slots = plan.slot_of_input
    spec = tuple((name, slots.get(name), checks[name]) for name in required)
    count = len(required)
    template = plan.template
    out_slots = tuple(plan.output_slots)
    fresh = plan.output_fresh
    # Every output from a fresh kernel: new arrays that own their memory are handed out as they
    # are unless two outputs are one array (checked per run, cheaper than detach_outputs).
    all_fresh = all(fresh)
    single = len(out_slots) == 1
    ndarray = np.ndarray

    def run(feeds: dict[str, Any]) -> list[Any] | None:
        if len(feeds) != count:
            return None
        values = template.copy()
        for name, slot, check in spec:
            value = feeds.get(name, run)
            if value is run:
                return None
            if slot is None:
                check(value)
            else:
                values[slot] = check(value)
        plan.runner(values)
        if all_fresh:
            outputs = [values[s] for s in out_slots]
            for value in outputs:
                if value.__class__ is not ndarray or value.base is not None:
                    break
            else:
                if single or len(set(map(id, outputs))) == len(outputs):
                    return outputs
        return detach_outputs([values[s] for s in out_slots], fresh, protected, feeds.values())

    return run
