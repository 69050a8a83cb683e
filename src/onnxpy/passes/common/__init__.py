"""Level-1 (ORT_ENABLE_BASIC) passes: semantics-preserving cleanups of any graph."""

from __future__ import annotations

from onnxpy.passes.base import Pass
from onnxpy.passes.common.cast import CastElimination
from onnxpy.passes.common.constant_folding import ConstantFolding
from onnxpy.passes.common.cse import CommonSubexpressionElimination
from onnxpy.passes.common.dead_code import DeadCodeElimination
from onnxpy.passes.common.identity import IdentityElimination
from onnxpy.passes.common.noop import NoopElimination
from onnxpy.passes.common.shape_folding import ShapeFolding
from onnxpy.passes.common.transpose import TransposeCancellation

__all__ = [
    "common_passes",
    "CastElimination",
    "ConstantFolding",
    "CommonSubexpressionElimination",
    "DeadCodeElimination",
    "IdentityElimination",
    "NoopElimination",
    "ShapeFolding",
    "TransposeCancellation",
]


def common_passes() -> list[Pass]:
    """The basic pipeline, in order; dead-code elimination last."""
    return [
        ConstantFolding(),
        ShapeFolding(),
        IdentityElimination(),
        CastElimination(),
        NoopElimination(),
        TransposeCancellation(),
        CommonSubexpressionElimination(),
        DeadCodeElimination(),
    ]
