"""Graph optimizer: rewrites an onnx.ModelProto before the planner compiles it.

``optimize(model, level)`` follows onnxruntime's levels: ``ORT_ENABLE_BASIC`` runs the common
passes (constant folding, eliminations, CSE, dead code), ``ORT_ENABLE_EXTENDED`` and above add
fusions. The result uses standard ONNX operators only, keeps the graph's inputs and outputs and
computes the same values.
"""

from __future__ import annotations

from onnxpy.passes.base import Pass
from onnxpy.passes.context import GraphContext
from onnxpy.passes.manager import PassManager, optimize, passes_for_level

__all__ = ["optimize", "Pass", "PassManager", "GraphContext", "passes_for_level"]
