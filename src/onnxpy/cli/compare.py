"""``onnxpy compare MODEL``: node by node against onnxruntime, onnx.reference or a model."""

from __future__ import annotations

import json

import click

from onnxpy.cli.run import INPUT_HELP

__all__ = ["command"]


@click.command("compare")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--against",
    default="onnxruntime",
    show_default=True,
    metavar="onnxruntime|reference|MODEL2",
    help="The other side: a runtime, or a second model run by onnxpy (values matched by name).",
)
@click.option(
    "--load-outputs",
    type=click.Path(exists=True, dir_okay=False),
    help="Check against golden outputs (.npz from run --save-outputs).",
)
@click.option("--input", "-i", "inputs", multiple=True, metavar="SPEC", help=INPUT_HELP)
@click.option("--batch", type=int, default=1, show_default=True, help="Value of symbolic dims.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of random inputs.")
@click.option("--rtol", type=float, default=1e-4, show_default=True)
@click.option("--atol", type=float, default=1e-4, show_default=True)
@click.option("--chunk", type=int, default=128, show_default=True,
              help="Values exposed at once (bounds memory on big models).")  # fmt: skip
@click.option("--rows", type=int, default=40, show_default=True, help="Nodes shown in the table.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def command(
    model: str,
    against: str,
    load_outputs: str | None,
    inputs: tuple[str, ...],
    batch: int,
    seed: int,
    rtol: float,
    atol: float,
    chunk: int,
    rows: int,
    as_json: bool,
) -> int:
    """Run MODEL in onnxpy and in another runtime with every intermediate value exposed, and
    report per node (topological order) the max error; name the first node whose outputs
    diverge beyond tolerance, with statistics of its inputs. Exit 1 on divergence.

    Values are exposed a chunk at a time, so memory stays bounded on big models.

    \b
    Examples:
      onnxpy compare model.onnx                          # against onnxruntime
      onnxpy compare model.onnx --against reference      # onnx.reference
      onnxpy compare model.onnx --against model.opt.onnx
      onnxpy compare model.onnx --load-outputs golden.npz -i inputs.npz
    """
    from onnxpy.cli._progress import progress
    from onnxpy.tools.compare import compare_models, compare_outputs

    if load_outputs:
        report = compare_outputs(
            model, load_outputs, inputs=inputs, batch=batch, seed=seed, rtol=rtol, atol=atol
        )
    else:
        if against == "onnxruntime":
            from onnxpy.cli import require

            require("onnxruntime", "dev", "comparing against onnxruntime")
        with progress("comparing") as update:
            report = compare_models(
                model, against, inputs=inputs, batch=batch, seed=seed, rtol=rtol, atol=atol,
                chunk_values=chunk, progress=update,
            )  # fmt: skip
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format(rows))
    return 0 if report.ok else 1
