"""What ``run`` hands back: fresh, writable arrays that alias nothing the caller or the session
keeps.

Kernels registered ``fresh`` return new arrays; their outputs go out as they are. Anything else
may be a constant of the plan (read-only, the same object every run), a view of a weight, the
caller's own input (an Identity at level 0) or a view of another output. Those are found by
walking each array's ``base`` chain to the buffer that owns the memory, and copied when that
owner is a weight, a constant, a feed, or already handed out in this call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["owner_ids", "detach_outputs"]


def _owner(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def owner_ids(values: Iterable[Any]) -> set[int]:
    """ids of the buffers that own the memory of ``values`` (arrays, or lists of them)."""
    ids: set[int] = set()
    for v in values:
        if isinstance(v, np.ndarray):
            ids.add(id(_owner(v)))
        elif isinstance(v, (list, tuple)):
            ids |= owner_ids(v)
    return ids


def _detach(value: Any, protected: set[int], handed_out: set[int]) -> Any:
    if isinstance(value, np.ndarray):
        owner = _owner(value)
        if (
            not value.flags.writeable
            or owner.base is not None  # memory of a mapped file, bytes or another buffer
            or id(owner) in protected
            or id(owner) in handed_out
        ):
            value = np.array(value, copy=True)
            owner = value
        handed_out.add(id(owner))
        return value
    if isinstance(value, list):
        return [_detach(v, protected, handed_out) for v in value]
    if isinstance(value, np.generic):
        return np.asarray(value)  # a new 0-d array
    return value


def detach_outputs(
    outputs: list[Any], fresh: list[bool], protected: set[int], feeds: Iterable[Any]
) -> list[Any]:
    """``outputs`` made safe to give away (see the module docstring), in place.

    ``fresh[i]``: output i comes from a fresh kernel (nothing to check); ``protected``: owner
    ids of the plan's constants and weights; ``feeds``: the values the caller passed.
    """
    handed_out: set[int] = set()
    feed_owners: set[int] | None = None
    for i, value in enumerate(outputs):
        if fresh[i] and isinstance(value, np.ndarray):
            owner = _owner(value)
            if id(owner) not in handed_out:
                handed_out.add(id(owner))
                continue
        if feed_owners is None:
            feed_owners = protected | owner_ids(feeds)
        outputs[i] = _detach(value, feed_owners, handed_out)
    return outputs
