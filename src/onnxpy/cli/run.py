"""``onnxpy run MODEL``: run a model once; save inputs and outputs as golden files."""

from __future__ import annotations

import click
import numpy as np

__all__ = ["command"]

INPUT_HELP = (
    "NAME=FILE.npy, FILE.npz, FILE.json, NAME=random or NAME=random:1,3,224,224 (repeatable); "
    "inputs not given are random"
)


def summary(name: str, value: object) -> str:
    """One line about a value: dtype, shape and range for tensors."""
    if isinstance(value, np.ndarray):
        line = f"{name}: {value.dtype} shape={list(value.shape)}"
        if value.size and value.dtype.kind in "fiu":
            line += f" min={value.min():.4g} max={value.max():.4g}"
        return line
    size = f" of {len(value)}" if hasattr(value, "__len__") else ""
    return f"{name}: {type(value).__name__}{size}"


@click.command("run")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True, metavar="SPEC", help=INPUT_HELP)
@click.option("--batch", type=int, default=1, show_default=True, help="Value of symbolic dims.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of random inputs.")
@click.option("--outputs", default="", metavar="A,B", help="Values to return: any value name.")
@click.option(
    "--out", "--save-outputs", "out", type=click.Path(dir_okay=False), help="Save outputs (.npz)."
)
@click.option("--save-inputs", type=click.Path(dir_okay=False), help="Save the inputs (.npz).")
@click.option("--check-nan", is_flag=True, help="Name the first node producing NaN or Inf.")
def command(
    model: str,
    inputs: tuple[str, ...],
    batch: int,
    seed: int,
    outputs: str,
    out: str | None,
    save_inputs: str | None,
    check_nan: bool,
) -> int:
    """Run MODEL once and print a summary of its outputs (or of any intermediate values).

    \b
    Examples:
      onnxpy run model.onnx
      onnxpy run model.onnx --batch 8 --input X=x.npy
      onnxpy run model.onnx -i input_ids=random:1,128 --outputs /layer.0/Add_output_0
      onnxpy run model.onnx --save-inputs in.npz --save-outputs golden.npz
      onnxpy compare model.onnx --load-outputs golden.npz -i in.npz     # later
      onnxpy run model.onnx --check-nan
    """
    from onnxpy.tools.io import save_arrays
    from onnxpy.tools.run import run_model

    names = [n for n in outputs.split(",") if n] or None
    res = run_model(model, inputs, outputs=names, batch=batch, seed=seed, check_nan=check_nan)
    for name, value in res.outputs.items():
        click.echo(summary(name, value))
    click.echo(f"ran in {res.seconds * 1e3:.2f} ms")
    if save_inputs:
        save_arrays(save_inputs, res.feeds)
        click.echo(f"inputs saved to {save_inputs}")
    if out:
        skipped = save_arrays(out, res.outputs)
        click.echo(f"outputs saved to {out}")
        if skipped:
            click.echo(f"  not saved (not tensors): {', '.join(skipped)}", err=True)
    if check_nan:
        if res.nonfinite is None:
            click.echo("no NaN or Inf in any value")
        else:
            node, op, stats = res.nonfinite
            click.echo(
                f"first NaN/Inf: node '{node}'{f' ({op})' if op else ''}: {stats.describe()}"
            )
            return 1
    return 0
