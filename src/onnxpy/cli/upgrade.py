"""``onnxpy upgrade MODEL -o OUT --opset N``: onnx's version converter."""

from __future__ import annotations

import click

__all__ = ["command"]


@click.command("upgrade")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--opset", required=True, type=int, help="Target default-domain opset.")
def command(model: str, output: str, opset: int) -> int:
    """Convert MODEL to another opset with onnx's version converter and write it.

    \b
    Examples:
      onnxpy upgrade model.onnx -o model.op21.onnx --opset 21
    """
    from onnxpy.tools.extract import upgrade_model

    upgrade_model(model, output, opset)
    click.echo(f"wrote {output} (opset {opset})")
    return 0
