"""``onnxpy view``: the graph as onnxpy's own HTML page or SVG, or in Netron.

The layout is computed in Python (:mod:`onnxpy.tools.view.layout`) once and drawn by both the
page and the SVG export. ``times`` (from the profiler) colour nodes by measured time; ``diff``
marks nodes added, changed or removed relative to another model (e.g. before ``optimize``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from onnxpy.errors import InvalidArgument

__all__ = ["ViewResult", "write_html", "write_svg", "view_model", "prepare"]


@dataclass
class ViewResult:
    html: str | None = None
    svg: str | None = None
    nodes: int = 0
    netron_url: str | None = None


def prepare(
    model: str | os.PathLike,
    *,
    profile: bool = False,
    trace: str | os.PathLike | None = None,
    diff: str | os.PathLike | None = None,
    inputs: Sequence[str] = (),
    batch: int = 1,
):
    """(page graph, layout) for ``model`` with optional timings and diff marks."""
    from onnxpy.tools.graph import named_copy
    from onnxpy.tools.io import load_model_proto
    from onnxpy.tools.view.graph import build_page_graph
    from onnxpy.tools.view.layout import layout_graph

    path = os.fspath(model)
    proto = named_copy(load_model_proto(path, weights=profile))
    times: Mapping[str, float] | None = None
    if trace is not None:
        from onnxpy.tools.view.profile import trace_times

        times = trace_times(trace)
    elif profile:
        from onnxpy.tools.view.profile import profile_times

        base = os.path.dirname(os.path.abspath(path))
        times = profile_times(_with_base(proto, base), inputs, batch)
    other = None
    if diff is not None:
        other = named_copy(load_model_proto(diff, weights=False))
    page = build_page_graph(proto, times=times, diff=other, title=os.path.basename(path))
    layout = layout_graph(page.vertices, page.edges)
    return page, layout


def _with_base(proto, base: str):
    """External data is read relative to the model's folder: load it into the proto."""
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    if any(uses_external_data(t) for t in proto.graph.initializer):
        load_external_data_for_model(proto, base)
    return proto


def write_html(model: str | os.PathLike, output: str | os.PathLike, **options) -> int:
    """Write the self-contained page for ``model``; returns the number of nodes drawn."""
    from onnxpy.tools.view.html import render_html

    page, layout = prepare(model, **options)
    with open(output, "w", encoding="utf-8") as f:
        f.write(render_html(page, layout))
    return page.stats["nodes"]


def write_svg(model: str | os.PathLike, output: str | os.PathLike, **options) -> int:
    """Write the static SVG picture (same layout as the page); returns the number of nodes."""
    from onnxpy.tools.view.svg import render_svg

    page, layout = prepare(model, **options)
    with open(output, "w", encoding="utf-8") as f:
        f.write(render_svg(page, layout))
    return page.stats["nodes"]


def view_model(
    model: str | os.PathLike,
    *,
    html: str | os.PathLike | None = None,
    svg: str | os.PathLike | None = None,
    netron: bool | None = None,
    browse: bool = True,
    port: int = 8080,
    **options,
) -> ViewResult:
    """Show ``model``: Netron on localhost when asked (``netron=True``) or, by default, when it
    is installed and no file output is requested; otherwise onnxpy's own page (written to
    ``html``, or ``<model>.html`` beside the current directory) and/or the SVG."""
    result = ViewResult()
    wants_files = (
        html is not None
        or svg is not None
        or options.get("profile")
        or options.get("trace")
        or options.get("diff")
    )
    if netron is None:
        netron = not wants_files and _netron_installed()
    if netron:
        if wants_files:
            raise InvalidArgument("Netron shows the model as is: --html/--svg/--profile/--diff "
                                  "are onnxpy's page")  # fmt: skip
        result.netron_url = serve_netron(model, port=port, browse=browse)
        return result
    if html is None and svg is None:
        html = os.path.splitext(os.path.basename(os.fspath(model)))[0] + ".html"
    if html is not None:
        result.nodes = write_html(model, html, **options)
        result.html = os.fspath(html)
        if browse:
            import webbrowser

            webbrowser.open("file://" + os.path.abspath(html))
    if svg is not None:
        result.nodes = write_svg(model, svg, **options)
        result.svg = os.fspath(svg)
    return result


def _netron_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("netron") is not None


def serve_netron(model: str | os.PathLike, *, port: int = 8080, browse: bool = True) -> str:
    """Serve ``model`` with Netron on localhost:``port``; returns the URL (server runs in a
    background thread of this process until :func:`netron.stop` or exit)."""
    try:
        import netron
    except ImportError as e:
        raise InvalidArgument(
            f'Netron is not installed ({e}): pip install "onnxpy[view]", or use --html'
        ) from e
    address = netron.serve(os.fspath(model), None, address=("localhost", port), browse=browse)
    host, bound = address if isinstance(address, tuple) else ("localhost", port)
    return f"http://{host}:{bound}"
