"""Dead-code elimination: drop nodes and initializers no graph output depends on.

Liveness flows backwards from the graph outputs through node inputs and through the names
subgraphs read from the enclosing scope. Initializers that are also graph inputs are part of
the model's interface (overridable) and always stay. An initializer is decoded once before it
is dropped, so a malformed one is still refused (as the planner would) rather than hidden.
"""

from __future__ import annotations

from onnxpy.model.graph_names import outer_reads
from onnxpy.model.tensors import tensor_to_array
from onnxpy.passes.base import Pass
from onnxpy.passes.context import GraphContext

__all__ = ["DeadCodeElimination"]


class DeadCodeElimination(Pass):
    name = "dead_code_elimination"

    def run(self, ctx: GraphContext) -> bool:
        live = set(ctx.graph_outputs)
        nodes = list(ctx.nodes())
        dead = []
        for i, node in reversed(nodes):
            if not any(o in live for o in node.output if o):
                dead.append(i)
                continue
            live.update(n for n in node.input if n)
            for a in node.attribute:
                for g in [a.g] if a.HasField("g") else list(a.graphs):
                    live |= outer_reads(g)
        for i in dead:
            ctx.remove(i)
        g = ctx.graph
        unused = [
            k
            for k, t in enumerate(g.initializer)
            if t.name not in live and t.name not in ctx.graph_inputs
        ]
        for k in reversed(unused):
            tensor_to_array(g.initializer[k], ctx.base_dir)  # raises if malformed
            del g.initializer[k]
        if unused:
            ctx.initializers = {t.name: t for t in g.initializer}
        return bool(dead or unused)
