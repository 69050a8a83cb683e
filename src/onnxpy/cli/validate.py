"""``onnxpy validate MODEL --source ...``: the source model vs the ONNX model in onnxpy."""

from __future__ import annotations

import json

import click

from onnxpy.cli.run import INPUT_HELP

__all__ = ["command"]


@click.command("validate")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--source", required=True, metavar="KIND:REF",
              help="sklearn:FILE, torch:module:factory or transformers:DIR[:task].")  # fmt: skip
@click.option("--trust-pickle", is_flag=True,
              help="Allow unpickling FILE (it runs code: only for files you trust).")  # fmt: skip
@click.option("--input", "-i", "inputs", multiple=True, metavar="SPEC", help=INPUT_HELP)
@click.option("--batch", type=int, default=8, show_default=True, help="Rows of generated inputs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rtol", type=float, default=1e-4, show_default=True)
@click.option("--atol", type=float, default=1e-5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def command(model, source, trust_pickle, inputs, batch, seed, rtol, atol, as_json) -> int:
    """Run the source framework model and MODEL (in onnxpy) on the same inputs, given or
    generated; print per output the max absolute and relative error and pass/fail. Exit 1
    when any output fails.

    \b
    Examples:
      onnxpy validate forest.onnx --source sklearn:forest.pkl --trust-pickle -i X=x.npy
      onnxpy validate cnn.onnx --source torch:mymodels:make_cnn --batch 4
      onnxpy validate bert.onnx --source transformers:./bert-tiny --atol 1e-4
    """
    from onnxpy.tools.validate import validate_model

    report = validate_model(
        source, model, inputs=inputs, batch=batch, seed=seed, rtol=rtol, atol=atol,
        trust_pickle=trust_pickle,
    )  # fmt: skip
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format())
    return 0 if report.ok else 1
