"""ai.onnx.preview.training::Gradient: reverse-mode differentiation of the enclosing graph.

The node names a value ``y`` of its graph and the values ``xs`` (and ``zs``) it depends on;
its inputs carry the values of xs then zs, and it outputs dy/dx for each x, with y's gradient
seeded to ones (the operator's definition). At session creation the factory cuts the nodes
between xs/zs and y out of the graph, compiles them as a forward plan, and resolves one
vector-Jacobian rule per node; an operator without a rule is refused then, not at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from onnx import GraphProto, helper

from onnxpy import errors
from onnxpy.kernels.registry import NodeInfo, register
from onnxpy.model.tensors import tensor_to_array

_Vjp = Callable[[list[np.ndarray], np.ndarray, np.ndarray], list[np.ndarray | None]]


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a broadcast gradient back down to an operand's shape."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra > 0 else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _add(ins, out, g):
    return [_unbroadcast(g, ins[0].shape), _unbroadcast(g, ins[1].shape)]


def _sub(ins, out, g):
    return [_unbroadcast(g, ins[0].shape), _unbroadcast(-g, ins[1].shape)]


def _mul(ins, out, g):
    a, b = ins
    return [_unbroadcast(g * b, a.shape), _unbroadcast(g * a, b.shape)]


def _div(ins, out, g):
    a, b = ins
    return [_unbroadcast(g / b, a.shape), _unbroadcast(-g * a / (b * b), b.shape)]


def _matmul(ins, out, g):
    a, b = ins
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError("Gradient of MatMul is implemented for operands of rank >= 2")
    ga = g @ np.swapaxes(b, -1, -2)
    gb = np.swapaxes(a, -1, -2) @ g
    return [_unbroadcast(ga, a.shape), _unbroadcast(gb, b.shape)]


def _pow(ins, out, g):
    a, p = ins
    ga = g * p * np.power(a, p - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gp = np.where(a > 0, g * out * np.log(np.where(a > 0, a, 1)), 0)
    return [_unbroadcast(ga.astype(a.dtype), a.shape), _unbroadcast(gp.astype(p.dtype), p.shape)]


_RULES: dict[str, _Vjp] = {
    "Add": _add,
    "Sub": _sub,
    "Mul": _mul,
    "Div": _div,
    "MatMul": _matmul,
    "Pow": _pow,
    "Neg": lambda ins, out, g: [-g],
    "Identity": lambda ins, out, g: [g],
    "Relu": lambda ins, out, g: [g * (ins[0] > 0)],
    "Sigmoid": lambda ins, out, g: [g * out * (1 - out)],
    "Tanh": lambda ins, out, g: [g * (1 - out * out)],
    "Exp": lambda ins, out, g: [g * out],
    "Log": lambda ins, out, g: [g / ins[0]],
    "Sqrt": lambda ins, out, g: [g / (2 * out)],
}


def _forward_nodes(graph: GraphProto, y: str, sources: set[str]) -> list[Any]:
    """The nodes on which ``y`` depends, in graph order, stopping at ``sources``."""
    producer = {o: n for n in graph.node for o in n.output if o}
    needed: list[Any] = []
    seen: set[int] = set()
    stack = [y]
    while stack:
        name = stack.pop()
        if name in sources or name not in producer:
            continue
        node = producer[name]
        if id(node) in seen:
            continue
        seen.add(id(node))
        needed.append(node)
        stack.extend(i for i in node.input if i)
    order = {id(n): i for i, n in enumerate(graph.node)}
    return sorted(needed, key=lambda n: order[id(n)])


@register("Gradient", since=1, domain="ai.onnx.preview.training", factory=True)
def gradient(info: NodeInfo, *, xs=None, zs=None, y=None):
    if not xs or y is None:
        raise ValueError("Gradient needs the attributes 'xs' and 'y'")
    if info.graph is None or info.compile_graph is None:
        raise errors.NotImplemented("Gradient needs its enclosing graph and a graph compiler")

    zs = list(zs or [])
    sources = list(xs) + zs
    nodes = _forward_nodes(info.graph, y, set(sources))
    for n in nodes:
        if n.op_type not in _RULES or n.domain not in ("", "ai.onnx"):
            raise errors.NotImplemented(f"Gradient through operator {n.op_type} is not implemented")
    names = [o for n in nodes for o in n.output if o]
    defined = set(names) | set(sources)
    initializers = [t for t in info.graph.initializer if t.name not in defined]
    forward = helper.make_graph(
        nodes,
        "gradient_forward",
        [helper.make_value_info(s, helper.make_empty_tensor_value_info(s).type) for s in sources],
        [helper.make_value_info(n, helper.make_empty_tensor_value_info(n).type) for n in names],
        initializers,
    )
    outputs = names or [y]
    run_forward = info.compile_graph(forward, outputs)
    constants = {t.name: tensor_to_array(t, None) for t in initializers}

    def run(*inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        values = dict(constants)
        values.update(zip(sources, inputs))
        values.update(zip(outputs, run_forward(*inputs)))
        grads: dict[str, np.ndarray] = {y: np.ones_like(values[y])}
        for n in reversed(nodes):
            g = grads.get(n.output[0])
            if g is None:
                continue
            ins = [values[i] for i in n.input]
            for name, gi in zip(n.input, _RULES[n.op_type](ins, values[n.output[0]], g)):
                if gi is not None and name:
                    grads[name] = grads[name] + gi if name in grads else gi
        return tuple(
            np.asarray(grads.get(x, np.zeros_like(values[x])), dtype=values[x].dtype) for x in xs
        )

    return run
