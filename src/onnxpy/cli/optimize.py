"""``onnxpy optimize MODEL -o OUT``: write the optimized model, table of node counts."""

from __future__ import annotations

import click

__all__ = ["command"]


@click.command("optimize")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--level",
    type=click.Choice(["basic", "extended", "all"]),
    default="basic",
    show_default=True,
    help="basic: standard ops only (loadable by onnxruntime); extended/all: fusions too.",
)
@click.option("--fix-shape", "fix_shape", multiple=True, metavar="NAME=1,3,224,224",
              help="Make an input's dynamic dims static first (repeatable).")  # fmt: skip
def command(model: str, output: str, level: str, fix_shape: tuple[str, ...]) -> int:
    """Optimize MODEL with onnxpy's graph optimizer and write it to OUTPUT, with a table of
    node counts by op type before and after.

    \b
    Examples:
      onnxpy optimize model.onnx -o model.opt.onnx
      onnxpy optimize resnet.onnx -o resnet.opt.onnx --level all --fix-shape input=1,3,224,224
      onnxpy view model.opt.onnx --diff model.onnx --html diff.html
    """
    from onnxpy.tools.optimize import optimize_model
    from onnxpy.tools.shapes import parse_fix_shape

    shapes = dict(parse_fix_shape(s) for s in fix_shape)
    report = optimize_model(model, output, level, shapes)
    click.echo(report.format())
    return 0
