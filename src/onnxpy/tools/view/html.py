"""The self-contained HTML page: the SVG from :mod:`svg`, the node details as JSON and a small
script of onnxpy's own (``page.js``) for pan, zoom, search and the details panel. No network:
everything is inline."""

from __future__ import annotations

import json
from html import escape
from importlib import resources

from onnxpy.tools.view.graph import PageGraph
from onnxpy.tools.view.layout import Layout
from onnxpy.tools.view.svg import STYLE, render_svg

__all__ = ["render_html"]

_PAGE_STYLE = """
* { box-sizing: border-box; }
body { margin: 0; font: 13px sans-serif; display: flex; flex-direction: column; height: 100vh; }
header { display: flex; gap: 12px; align-items: center; padding: 6px 10px;
  border-bottom: 1px solid #ccd; background: #f7f8fa; }
header h1 { font-size: 15px; margin: 0; }
header .stats { color: #555; }
#search { width: 260px; padding: 3px 6px; }
main { flex: 1; display: flex; min-height: 0; }
#canvas { flex: 1; overflow: hidden; cursor: grab; background: #fff; }
#details { width: 360px; overflow: auto; border-left: 1px solid #ccd; padding: 8px 12px;
  background: #fbfbfd; }
#details h2 { font-size: 14px; word-break: break-all; margin: 4px 0; }
#details h3 { font-size: 12px; margin: 12px 0 4px; color: #445; }
#details table { border-collapse: collapse; width: 100%; font-size: 12px; }
#details td { border-top: 1px solid #e3e6ea; padding: 2px 4px; vertical-align: top;
  word-break: break-all; }
#details td.k, #details td.v { font-family: monospace; width: 40%; }
.init { color: #777; font-size: 11px; }
.status.added { color: #2e7d32; } .status.changed { color: #ef6c00; }
.status.removed { color: #c62828; }
.node { cursor: pointer; }
.node.match rect { stroke: #d81b60 !important; stroke-width: 3.5 !important; }
.node.selected rect { stroke: #000 !important; stroke-width: 3 !important; }
"""


def _stats_text(page: PageGraph) -> str:
    s = page.stats
    parts = [f"{s.get('nodes', 0)} nodes"]
    if s.get("total_ms"):
        parts.append(f"{s['total_ms']:.2f} ms per run (measured)")
    if "added" in s:
        parts.append(f"{s['added']} added, {s['changed']} changed, {s['removed']} removed")
    return " · ".join(parts)


def render_html(page: PageGraph, layout: Layout) -> str:
    """The whole page as one string."""
    script = resources.files("onnxpy.tools.view").joinpath("page.js").read_text()
    payload = json.dumps({"details": page.details, "stats": page.stats}).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{escape(page.title)} - onnxpy view</title>
<style>{_PAGE_STYLE}{STYLE}</style></head>
<body>
<header><h1>{escape(page.title)}</h1>
<span class="stats" id="stats">{escape(_stats_text(page))}</span>
<input id="search" type="search" placeholder="search nodes by name or op (Enter: next)">
<span id="count"></span><button id="fit" type="button">fit</button></header>
<main><div id="canvas">{render_svg(page, layout, standalone=False)}</div>
<aside id="details"><p>Click a node to see its attributes, inputs and outputs.</p></aside></main>
<script type="application/json" id="onnxpy-data">{payload}</script>
<script>{script}</script>
</body></html>
"""
