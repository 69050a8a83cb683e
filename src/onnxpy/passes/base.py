"""What a graph pass is: a name, the level that enables it, and ``run(ctx) -> changed``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from onnxpy.passes.context import GraphContext

__all__ = ["Pass", "BASIC", "EXTENDED", "NONDETERMINISTIC"]

BASIC = 1
EXTENDED = 2

# Operators whose result depends on being executed (never folded, merged or moved).
NONDETERMINISTIC = frozenset(
    {
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
        "Dropout",
    }
)


class Pass(ABC):
    """One rewrite over the main graph. ``run`` edits ``ctx`` and says whether it changed it.

    A pass leaves removed nodes marked in ``ctx`` (the manager commits them) and must keep the
    graph's inputs and outputs, and the value bound to every surviving name, unchanged.
    """

    name: ClassVar[str]
    level: ClassVar[int] = BASIC
    # Operator types (of main-graph nodes) the pass cannot change anything without: the
    # manager skips the pass while one of them is missing from the graph. Empty: always run.
    requires: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def run(self, ctx: GraphContext) -> bool: ...

    def __repr__(self) -> str:
        return f"<pass {self.name}>"
