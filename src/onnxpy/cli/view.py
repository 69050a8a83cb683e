"""``onnxpy view MODEL``: onnxpy's own page (HTML/SVG, timings, diff) or Netron."""

from __future__ import annotations

import click

from onnxpy.cli.run import INPUT_HELP

__all__ = ["command"]


@click.command("view")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--html", type=click.Path(dir_okay=False), help="Write onnxpy's page here.")
@click.option("--svg", type=click.Path(dir_okay=False), help="Write a static SVG picture.")
@click.option("--profile", is_flag=True, help="Measure each node with onnxpy's profiler.")
@click.option("--trace", type=click.Path(exists=True, dir_okay=False),
              help="Per-node times from a profile JSON (onnxpy or onnxruntime).")  # fmt: skip
@click.option("--diff", type=click.Path(exists=True, dir_okay=False),
              help="Mark nodes added, changed or removed relative to this model.")  # fmt: skip
@click.option("--input", "-i", "inputs", multiple=True, metavar="SPEC", help=INPUT_HELP)
@click.option("--batch", type=int, default=1, show_default=True, help="For --profile inputs.")
@click.option("--netron/--no-netron", default=None,
              help="Serve with Netron (default: if installed and no file asked).")  # fmt: skip
@click.option("--port", type=int, default=8080, show_default=True, help="Netron's port.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
def command(model, html, svg, profile, trace, diff, inputs, batch, netron, port, no_browser):
    """Show MODEL's graph. With --html (and by default when Netron is absent) onnxpy writes its
    own self-contained page: the graph laid out top to bottom, edges with dtypes and shapes,
    initializer sizes, search by name, click a node for its attributes; --profile colours
    nodes by measured time; --diff marks changes. --svg exports the same layout.

    \b
    Examples:
      onnxpy view model.onnx --html model.html
      onnxpy view model.onnx --html prof.html --profile --batch 8
      onnxpy optimize model.onnx -o opt.onnx && onnxpy view opt.onnx --diff model.onnx --html d.html
      onnxpy view model.onnx --svg model.svg
      onnxpy view model.onnx --netron --port 8081
    """
    from onnxpy.tools.view import view_model

    result = view_model(
        model, html=html, svg=svg, netron=netron, browse=not no_browser, port=port,
        profile=profile, trace=trace, diff=diff, inputs=inputs, batch=batch,
    )  # fmt: skip
    if result.netron_url:
        click.echo(f"Netron serving {model} at {result.netron_url} (Ctrl-C stops)")
        import netron

        netron.wait()
        return 0
    if result.html:
        click.echo(f"wrote {result.html} ({result.nodes} nodes)")
    if result.svg:
        click.echo(f"wrote {result.svg} ({result.nodes} nodes)")
    return 0
