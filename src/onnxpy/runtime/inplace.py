"""Where a node may write its result into one of its inputs' buffers.

A kernel registered with ``in_place`` (elementwise arithmetic and activations) can reuse an
input's array for its output. The planner allows that for input ``v`` of step ``i`` only when
nothing can observe the overwrite:

* ``v`` was made by a ``fresh`` kernel of this plan (an array of its own: not a graph input,
  an initializer, a constant, nor a view of any of those);
* no value that may share ``v``'s buffer is read after step ``i`` or is a plan output. A
  kernel that is not ``fresh`` (Reshape, Identity, Slice, ...) may return a view of its
  inputs, so its outputs count as sharing the buffers of all of them.

This saves an allocation and keeps the working set in cache for chains of elementwise nodes
(an unfused graph), and lowers peak memory on large activations.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["in_place_inputs"]


def in_place_inputs(
    steps: Sequence[tuple[bool, bool, Sequence[int], Sequence[int]]],
    kept: set[int],
    last_use: dict[int, int],
) -> dict[int, int]:
    """{step index: input position} of the steps that may overwrite that input.

    ``steps`` lists, per step in run order, (kernel is fresh, kernel can work in place and the
    node has no attributes, input slots, output slots). ``kept``: slots that outlive the run
    (plan outputs); ``last_use``: the index of each slot's last reading step.
    """
    # buffer owner (a slot a fresh kernel wrote) -> every slot that may view that buffer
    sharers: dict[int, set[int]] = {}
    roots_of: dict[int, set[int]] = {}  # slot -> owners whose buffer it may view
    chosen: dict[int, int] = {}
    for i, (fresh, capable, ins, outs) in enumerate(steps):
        if capable:
            for pos, s in enumerate(ins):
                if s in sharers and _dead_after(s, i, sharers, kept, last_use):
                    chosen[i] = pos
                    break
        if fresh:
            for s in outs:
                roots_of[s] = {s}
                sharers[s] = {s}
        else:
            roots = set().union(*(roots_of.get(s, ()) for s in ins))
            for s in outs:
                roots_of[s] = roots
                for r in roots:
                    sharers[r].add(s)
    return chosen


def _dead_after(
    owner: int, step: int, sharers: dict[int, set[int]], kept: set[int], last_use: dict[int, int]
) -> bool:
    return all(s not in kept and last_use.get(s, -1) <= step for s in sharers[owner])
