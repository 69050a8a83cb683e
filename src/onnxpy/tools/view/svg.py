"""The laid-out graph as SVG: the static export, and the picture inside the HTML page."""

from __future__ import annotations

from html import escape

from onnxpy.tools.view.graph import PageGraph
from onnxpy.tools.view.layout import Layout

__all__ = ["render_svg", "heat_colour"]

_HEAT = [(255, 255, 255), (255, 237, 160), (254, 178, 76), (240, 59, 32), (189, 0, 38)]
STYLE = """
.node rect { fill: #eef3fb; stroke: #5b7db1; stroke-width: 1.2; }
.node.k-input rect, .node.k-output rect { fill: #e6f4ea; stroke: #3c8d4f; }
.node text { font: 12px sans-serif; text-anchor: middle; dominant-baseline: middle;
  fill: #1d2733; pointer-events: none; }
.node text.t { font-size: 9px; fill: #5a3a00; }
.node.hot text { fill: #fff; }
.node.s-added rect { stroke: #2e7d32; stroke-width: 3; }
.node.s-changed rect { stroke: #ef6c00; stroke-width: 3; }
.node.s-removed rect { stroke: #c62828; stroke-width: 2.5; stroke-dasharray: 5 3;
  fill: #fdecea; }
.edge { fill: none; stroke: #8895a7; stroke-width: 1.1; marker-end: url(#arrow); }
.edge.long { stroke: #b4bfcc; stroke-width: 0.7; }
.elabel { font: 9px monospace; fill: #5d6b7d; }
.legend { font: 12px sans-serif; fill: #333; }
"""


def heat_colour(fraction: float) -> str:
    """White (no time) through yellow and orange to dark red (the slowest node)."""
    f = min(max(fraction, 0.0), 1.0) * (len(_HEAT) - 1)
    i = min(int(f), len(_HEAT) - 2)
    t = f - i
    rgb = [round(a + (b - a) * t) for a, b in zip(_HEAT[i], _HEAT[i + 1])]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _path(points: list[tuple[float, float]], long: bool) -> str:
    (x0, y0), (x1, y1) = points[0], points[-1]
    if long or len(points) == 2:
        bend = min(60.0, abs(y1 - y0) / 2)
        return (
            f"M{x0:.1f},{y0:.1f} C{x0:.1f},{y0 + bend:.1f} "
            f"{x1:.1f},{y1 - bend:.1f} {x1:.1f},{y1:.1f}"
        )
    return "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points)


def render_svg(page: PageGraph, layout: Layout, *, standalone: bool = True) -> str:
    """SVG text: one ``<g class="node" data-id=...>`` per box, one path per edge."""
    times = [d.get("time_ms", 0.0) for d in page.details]
    slowest = max(times, default=0.0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="graph" width="{layout.width:.0f}" '
        f'height="{layout.height:.0f}" viewBox="0 0 {layout.width:.0f} {layout.height:.0f}">',
        f"<style>{STYLE}</style>" if standalone else "",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#8895a7"/></marker></defs>',
        '<g id="edges">',
    ]
    for e in layout.edges:
        cls = "edge long" if e.long else "edge"
        out.append(f'<path class="{cls}" d="{_path(e.points, e.long)}"/>')
        if e.label:
            x, y = e.points[0]
            out.append(
                f'<text class="elabel" x="{x + 4:.1f}" y="{y + 11:.1f}">{escape(e.label)}</text>'
            )
    out.append('</g><g id="nodes">')
    for v, d in zip(layout.vertices, page.details):
        cls = f"node k-{v.kind}" + (f" s-{d['status']}" if d.get("status") else "")
        rx = 16 if v.kind != "op" else 5
        fill = ""
        t = d.get("time_ms")
        if t is not None and slowest > 0:
            heat = (t / slowest) ** 0.5
            fill = f' style="fill:{heat_colour(heat)}"'
            cls += " hot" if heat > 0.75 else ""
        x, y = v.x - v.width / 2, v.y
        out.append(
            f'<g class="{cls}" id="n{v.id}" data-id="{v.id}" data-name="{escape(d["name"])}">'
            f"<title>{escape(d['name'])} ({escape(d['op'])})</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{v.width:.1f}" height="{v.height:.1f}" '
            f'rx="{rx}"{fill}/>'
        )
        if t is not None:
            out.append(f'<text x="{v.x:.1f}" y="{y + 12:.1f}">{escape(v.label)}</text>')
            out.append(f'<text class="t" x="{v.x:.1f}" y="{y + 26:.1f}">{t:.3f} ms</text>')
        else:
            out.append(f'<text x="{v.x:.1f}" y="{y + v.height / 2:.1f}">{escape(v.label)}</text>')
        out.append("</g>")
    out.append("</g></svg>")
    return "\n".join(s for s in out if s)
