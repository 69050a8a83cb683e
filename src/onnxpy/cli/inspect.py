"""``onnxpy inspect MODEL``: versions, inputs/outputs, op histogram, weights and FLOPs."""

from __future__ import annotations

import click

__all__ = ["command"]


def parse_dims(specs: tuple[str, ...]) -> dict[str, int]:
    dims = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not value.isdigit():
            raise click.BadParameter(
                f"{spec!r}: expected NAME=INT, e.g. batch=8", param_hint="--dim"
            )
        dims[name] = int(value)
    return dims


@click.command("inspect")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--dim", "dims", multiple=True, metavar="NAME=INT", help="Bind a symbolic dim.")
def command(model: str, as_json: bool, dims: tuple[str, ...]) -> int:
    """Print what MODEL holds: IR version, opsets, producer, metadata, inputs and outputs,
    op histogram, parameters and bytes, external data files, FLOPs and weights per op type
    (estimated from inferred shapes), and the ops onnxpy lacks.

    \b
    Examples:
      onnxpy inspect model.onnx
      onnxpy inspect bert.onnx --dim batch=1 --dim seq=128
      onnxpy inspect model.onnx --json | jq .parameters
    """
    from onnxpy.tools.inspect import inspect_model

    info = inspect_model(model, parse_dims(dims))
    click.echo(info.to_json() if as_json else info.format())
    return 0
