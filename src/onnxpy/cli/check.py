"""``onnxpy check MODEL``: every problem of a model, each with its node; exit 1 if any."""

from __future__ import annotations

import json

import click

__all__ = ["command"]


@click.command("check")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def command(model: str, as_json: bool) -> int:
    """Check MODEL with onnx's checker (full), strict shape inference and onnxpy's own
    load-time validation; list every problem with the node it concerns.

    Exit code 0 when valid, 1 when any problem is found.

    \b
    Examples:
      onnxpy check model.onnx
      onnxpy check model.onnx --json
    """
    from onnxpy.tools.check import check_model

    report = check_model(model)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format())
    return 0 if report.ok else 1
