"""``onnxpy extract MODEL -o OUT --inputs a --outputs b``: the subgraph between values."""

from __future__ import annotations

import click

__all__ = ["command"]


def split_names(text: str) -> list[str]:
    return [n for n in text.split(",") if n]


@click.command("extract")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--inputs", "-i", default="", metavar="A,B", help="Values that become graph inputs.")
@click.option("--outputs", required=True, metavar="C", help="Values that become graph outputs.")
def command(model: str, output: str, inputs: str, outputs: str) -> int:
    """Write the subgraph of MODEL that computes --outputs from --inputs (onnx's extractor).

    \b
    Examples:
      onnxpy extract model.onnx -o block.onnx -i /l1/Relu_output_0 --outputs /l2/Add_output_0
      onnxpy extract model.onnx -o head.onnx --inputs x --outputs /0/Gemm_output_0
    """
    from onnxpy.tools.extract import extract_model

    sub = extract_model(model, output, split_names(inputs), split_names(outputs))
    click.echo(
        f"wrote {output}: {len(sub.graph.node)} nodes, inputs "
        f"{[v.name for v in sub.graph.input]}, outputs {[v.name for v in sub.graph.output]}"
    )
    return 0
