"""Run a pipeline of passes to a fixed point, and pick the pipeline for an optimization level."""

from __future__ import annotations

from collections.abc import Sequence

from onnx import ModelProto, TypeProto

from onnxpy.passes.base import BASIC, EXTENDED, Pass
from onnxpy.passes.context import GraphContext

__all__ = ["PassManager", "passes_for_level", "optimize", "optimize_with_types"]

MAX_ITERATIONS = 8


def passes_for_level(level: int) -> list[Pass]:
    """The pipeline of ``GraphOptimizationLevel`` ``level`` (0: none; 1: common; 2+: fusions)."""
    from onnxpy.passes.common import common_passes
    from onnxpy.passes.fusion import early_fusion_passes, fusion_passes

    if level < BASIC:
        return []
    pipeline = common_passes()
    if level >= EXTENDED:
        # Fusions go before dead-code elimination so what they orphan is removed at once;
        # the early ones before constant folding, which would turn DQ(weight) into floats.
        pipeline[-1:-1] = fusion_passes()
        pipeline[:0] = early_fusion_passes()
    return pipeline


class PassManager:
    """Repeat the pipeline until no pass changes the model (at most ``max_iterations`` times).

    ``applied`` lists ``(iteration, pass name)`` for every pass run that changed the model.
    """

    def __init__(self, passes: Sequence[Pass], max_iterations: int = MAX_ITERATIONS) -> None:
        self.passes = list(passes)
        self.max_iterations = max_iterations
        self.applied: list[tuple[int, str]] = []
        # The optimized graph's value types, when the passes inferred them after the last
        # change (the final round changed nothing); None otherwise.
        self.types: dict[str, TypeProto] | None = None

    def run(self, model: ModelProto, base_dir: str | None = None) -> ModelProto:
        """Optimize ``model`` in place and return it."""
        if not self.passes or not model.graph.node:
            return model
        ctx = GraphContext(model, base_dir)
        present = _op_types(model)
        for iteration in range(self.max_iterations):
            changed = False
            for p in self.passes:
                if not p.requires <= present:  # nothing it could match (a sweep saved)
                    continue
                if p.run(ctx):
                    ctx.commit()
                    self.applied.append((iteration, p.name))
                    changed = True
                    present = _op_types(model)
            if not changed:
                self.types = ctx.known_types()
                break
            ctx.invalidate_types()
        _prune_value_info(model)
        return model


def _op_types(model: ModelProto) -> frozenset[str]:
    """The operator types of the main graph's nodes."""
    return frozenset(n.op_type for n in model.graph.node)


def _prune_value_info(model: ModelProto) -> None:
    """Forget type annotations of values that no longer exist."""
    g = model.graph
    defined = {o for n in g.node for o in n.output} | {t.name for t in g.initializer}
    defined |= {v.name for v in g.input}
    stale = [i for i, vi in enumerate(g.value_info) if vi.name not in defined]
    for i in reversed(stale):
        del g.value_info[i]


def optimize(
    model: ModelProto,
    level: int,
    *,
    base_dir: str | None = None,
    inplace: bool = False,
    passes: Sequence[Pass] | None = None,
) -> ModelProto:
    """The model optimized at ``level`` (onnxpy.GraphOptimizationLevel).

    Level 0 returns ``model`` itself. Otherwise the result is a copy unless ``inplace``.
    ``base_dir`` is the model's folder, where external data is read from (small tensors only).
    ``passes`` replaces the level's pipeline (for tests and tools).
    """
    return optimize_with_types(model, level, base_dir=base_dir, inplace=inplace, passes=passes)[0]


def optimize_with_types(
    model: ModelProto,
    level: int,
    *,
    base_dir: str | None = None,
    inplace: bool = False,
    passes: Sequence[Pass] | None = None,
) -> tuple[ModelProto, dict[str, TypeProto] | None]:
    """:func:`optimize`, plus the optimized graph's value types when the passes inferred them
    after their last change (None otherwise): the session plans with them instead of running
    shape inference once more (GPT-2: 18 ms)."""
    pipeline = list(passes) if passes is not None else passes_for_level(int(level))
    if not pipeline:
        return model, None
    if not inplace:
        copy = ModelProto()
        copy.CopyFrom(model)
        model = copy
    manager = PassManager(pipeline)
    return manager.run(model, base_dir), manager.types
