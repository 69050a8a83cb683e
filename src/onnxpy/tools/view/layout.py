"""A layered (Sugiyama-style) top-to-bottom layout of a dataflow graph, in plain Python.

No layout library was taken on: graphviz needs a system binary, and the pure-Python ones are
unmaintained; a DAG from an ONNX file needs only the classic four steps, written here:

1. layers: longest path from the sources, then sources (graph inputs, Constants) pulled down to
   just above their first consumer so they do not drag long edges across the picture;
2. virtual nodes on edges that span a few layers (edges spanning more than ``MAX_SPAN`` layers,
   such as an attention mask read by every block, are drawn as direct curves instead);
3. order within layers: barycenter sweeps down and up;
4. x coordinates: each node pulled toward the mean of its neighbours, overlaps pushed apart.

The same :class:`Layout` feeds the HTML page and the SVG export. Linear-ish in nodes and edges:
a 2,700-node transformer lays out in a few seconds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Vertex", "Edge", "Layout", "layout_graph", "MAX_SPAN"]

MAX_SPAN = 48
ROW = 64  # vertical distance between layers
GAP = 24  # horizontal gap between neighbours
HEIGHT = 34
CHAR = 7.2  # average width of a character at the page's font size


@dataclass
class Vertex:
    """A box to draw: an operator node, or a graph input/output."""

    id: int
    label: str
    kind: str = "op"  # op | input | output
    width: float = 0.0
    height: float = HEIGHT
    x: float = 0.0  # centre
    y: float = 0.0  # top
    layer: int = 0


@dataclass
class Edge:
    src: int
    dst: int
    label: str = ""
    points: list[tuple[float, float]] = field(default_factory=list)
    long: bool = False  # drawn as a direct curve (no virtual nodes)


@dataclass
class Layout:
    vertices: list[Vertex]
    edges: list[Edge]
    width: float
    height: float


def _layers(n: int, succ: list[list[int]], pred: list[list[int]], order: list[int]) -> list[int]:
    layer = [0] * n
    for v in order:
        for u in pred[v]:
            layer[v] = max(layer[v], layer[u] + 1)
    for v in reversed(order):  # pull sources down next to their first consumer
        if not pred[v] and succ[v]:
            layer[v] = max(layer[v], min(layer[w] for w in succ[v]) - 1)
    return layer


def _topological(n: int, succ: list[list[int]], pred: list[list[int]]) -> list[int]:
    waiting = [len(set(p)) for p in pred]
    ready = [v for v in range(n) if waiting[v] == 0]
    order: list[int] = []
    seen_edges: set[tuple[int, int]] = set()
    while ready:
        v = ready.pop()
        order.append(v)
        for w in succ[v]:
            if (v, w) in seen_edges:
                continue
            seen_edges.add((v, w))
            waiting[w] -= 1
            if waiting[w] == 0:
                ready.append(w)
    if len(order) < n:  # cycles are invalid ONNX; draw what remains in index order
        done = set(order)
        order += [v for v in range(n) if v not in done]
    return order


def layout_graph(vertices: Sequence[Vertex], edges: Sequence[Edge], sweeps: int = 6) -> Layout:
    """Assign ``x``, ``y`` to every vertex and polyline ``points`` to every edge (in place)."""
    n = len(vertices)
    for v in vertices:
        v.width = v.width or max(72.0, CHAR * len(v.label) + 20)
    succ: list[list[int]] = [[] for _ in range(n)]
    pred: list[list[int]] = [[] for _ in range(n)]
    for e in edges:
        succ[e.src].append(e.dst)
        pred[e.dst].append(e.src)
    order = _topological(n, succ, pred)
    layer = _layers(n, succ, pred, order)
    for v in vertices:
        v.layer = layer[v.id]

    # Virtual nodes: ids n.. ; chains replace edges spanning 2..MAX_SPAN layers.
    width = [v.width for v in vertices]
    vlayer = list(layer)
    up: dict[int, list[int]] = defaultdict(list)  # graph for ordering, including virtual nodes
    down: dict[int, list[int]] = defaultdict(list)
    chains: list[list[int]] = []
    for e in edges:
        span = layer[e.dst] - layer[e.src]
        if span > MAX_SPAN or span < 1:
            e.long = True
            chains.append([])
            continue
        chain = [e.src]
        for k in range(1, span):
            vid = len(width)
            width.append(8.0)
            vlayer.append(layer[e.src] + k)
            chain.append(vid)
        chain.append(e.dst)
        for a, b in zip(chain, chain[1:]):
            down[a].append(b)
            up[b].append(a)
        chains.append(chain[1:-1])
    total = len(width)
    rows: list[list[int]] = [[] for _ in range(max(vlayer, default=0) + 1)]
    rank = {v: i for i, v in enumerate(order)}
    for v in sorted(range(total), key=lambda v: rank.get(v, v)):
        rows[vlayer[v]].append(v)
    rows = _order_rows(rows, up, down, sweeps)
    x = _coordinates(rows, width, up, down)
    for v in vertices:
        v.x = x[v.id]
        v.y = v.layer * ROW + 20
    min_x = min((x[v] - width[v] / 2 for v in range(total)), default=0.0)
    shift = 20 - min_x
    for v in vertices:
        v.x += shift
    for e, chain in zip(edges, chains):
        a, b = vertices[e.src], vertices[e.dst]
        pts = [(a.x, a.y + a.height)]
        pts += [(x[c] + shift, vlayer[c] * ROW + 20 + HEIGHT / 2) for c in chain]
        pts.append((b.x, b.y))
        e.points = pts
    w = max((x[v] + width[v] / 2 for v in range(total)), default=0.0) + shift + 20
    h = (len(rows)) * ROW + 40
    return Layout(list(vertices), list(edges), w, h)


def _order_rows(
    rows: list[list[int]], up: dict[int, list[int]], down: dict[int, list[int]], sweeps: int
) -> list[list[int]]:
    pos: dict[int, float] = {}
    for row in rows:
        for i, v in enumerate(row):
            pos[v] = i
    for s in range(sweeps):
        downward = s % 2 == 0
        seq = rows[1:] if downward else rows[-2::-1]
        for row in seq:
            near = up if downward else down

            def key(v: int, near=near) -> float:
                ns = near.get(v)
                return sum(pos[u] for u in ns) / len(ns) if ns else pos[v]

            row.sort(key=key)
            for i, v in enumerate(row):
                pos[v] = i
    return rows


def _coordinates(
    rows: list[list[int]],
    width: list[float],
    up: dict[int, list[int]],
    down: dict[int, list[int]],
    rounds: int = 8,
) -> list[float]:
    x = [0.0] * len(width)
    for row in rows:  # packed left to right, centred on 0
        cursor = 0.0
        for v in row:
            x[v] = cursor + width[v] / 2
            cursor += width[v] + GAP
        for v in row:
            x[v] -= cursor / 2
    for r in range(rounds):
        downward = r % 2 == 0
        seq = rows if downward else rows[::-1]
        near = up if downward else down
        for row in seq:
            want = []
            for v in row:
                ns = near.get(v)
                want.append(sum(x[u] for u in ns) / len(ns) if ns else x[v])
            _place(row, want, width, x)
    return x


def _place(row: list[int], want: list[float], width: list[float], x: list[float]) -> None:
    """Put ``row``'s nodes as close to ``want`` as the order and gaps allow."""
    if not row:
        return
    left = list(want)
    for i in range(1, len(row)):  # push right where they overlap
        need = left[i - 1] + (width[row[i - 1]] + width[row[i]]) / 2 + GAP
        left[i] = max(left[i], need)
    right = list(want)
    for i in range(len(row) - 2, -1, -1):  # push left where they overlap
        need = right[i + 1] - (width[row[i + 1]] + width[row[i]]) / 2 - GAP
        right[i] = min(right[i], need)
    for i, v in enumerate(row):
        x[v] = (left[i] + right[i]) / 2
    for i in range(1, len(row)):  # averaging may overlap again: one final push right
        need = x[row[i - 1]] + (width[row[i - 1]] + width[row[i]]) / 2 + GAP
        x[row[i]] = max(x[row[i]], need)
