"""``onnxpy convert sklearn|torch|transformers``: write an ONNX model, then validate it."""

from __future__ import annotations

import click

from onnxpy.cli.run import INPUT_HELP

__all__ = ["command"]

_TRUST_HELP = "Allow unpickling FILE: unpickling runs any code in it, so only for files you trust."


def _common(f):
    """Options every converter shares."""
    for opt in reversed(
        [
            click.option("-o", "--output", required=True, type=click.Path(dir_okay=False)),
            click.option("--no-validate", is_flag=True, help="Skip validation against the source."),
            click.option(
                "--input",
                "-i",
                "inputs",
                multiple=True,
                metavar="SPEC",
                help="Validation inputs: " + INPUT_HELP,
            ),  # fmt: skip
            click.option("--rtol", type=float, default=None, help="Validation tolerance."),
            click.option("--atol", type=float, default=None, help="Validation tolerance."),
        ]
    ):
        f = opt(f)
    return f


def _finish(result) -> int:
    click.echo(f"wrote {result.path}")
    if result.validation is None:
        click.echo("validation skipped (--no-validate)")
        return 0
    click.echo(result.validation.format())
    return 0 if result.ok else 1


def _tolerances(rtol: float | None, atol: float | None) -> dict:
    return {k: v for k, v in (("rtol", rtol), ("atol", atol)) if v is not None}


@click.group("convert")
def command() -> None:
    """Convert a scikit-learn, PyTorch or transformers model to ONNX, with input and output
    names and a dynamic batch axis, and validate it against the source (exit 1 on mismatch).

    \b
    Examples:
      onnxpy convert sklearn forest.pkl -o forest.onnx --trust-pickle
      onnxpy convert torch mymodels:make_cnn --shape 1,3,32,32 -o cnn.onnx
      onnxpy convert transformers ./bert-dir --task sequence-classification -o bert.onnx
    """


@command.command("sklearn")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@_common
@click.option("--trust-pickle", is_flag=True, help=_TRUST_HELP)
@click.option("--input-name", default="X", show_default=True)
@click.option("--output-names", default="", metavar="A,B", help="Rename the outputs, in order.")
@click.option("--zipmap", is_flag=True, help="Keep ZipMap: probabilities as a list of dicts.")
@click.option("--opset", type=int, default=None, help="Default-domain opset (skl2onnx picks).")
def sklearn_command(file, output, no_validate, inputs, rtol, atol, trust_pickle, input_name,
                    output_names, zipmap, opset) -> int:  # fmt: skip
    """Convert a fitted estimator saved with joblib or pickle (needs --trust-pickle).

    \b
    Examples:
      onnxpy convert sklearn forest.pkl -o forest.onnx --trust-pickle
      onnxpy convert sklearn forest.pkl -o forest.onnx --trust-pickle -i X=x_test.npy
    """
    from onnxpy.cli import require
    from onnxpy.cli._progress import progress

    require("sklearn", "convert", "scikit-learn conversion")
    require("skl2onnx", "convert", "scikit-learn conversion")
    from onnxpy.convert.sklearn import convert_sklearn

    with progress("converting"):
        result = convert_sklearn(
            file, output, trust_pickle=trust_pickle, input_name=input_name,
            output_names=[n for n in output_names.split(",") if n], zipmap=zipmap, opset=opset,
            validate=not no_validate, inputs=inputs, **_tolerances(rtol, atol),
        )  # fmt: skip
    return _finish(result)


def _shape(text: str) -> list[int]:
    try:
        return [int(d) for d in text.replace("x", ",").split(",") if d]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected 1,3,32,32", param_hint="--shape") from None


@command.command("torch")
@click.argument("factory", metavar="MODULE:FACTORY")
@_common
@click.option("--shape", "shapes", multiple=True, required=True, metavar="1,3,32,32",
              help="Example input shape, one per input in order.")  # fmt: skip
@click.option("--dtype", "dtypes", multiple=True, metavar="float32|int64",
              help="Dtype per input in order (default float32).")  # fmt: skip
@click.option("--input-names", default="", metavar="A,B")
@click.option("--output-names", default="", metavar="Y")
@click.option("--static-batch", is_flag=True, help="Keep axis 0 fixed (default: symbolic).")
@click.option("--dynamic", "dynamic", multiple=True, metavar="NAME=AXIS:LABEL",
              help="Another symbolic axis (repeatable).")  # fmt: skip
@click.option("--opset", type=int, default=17, show_default=True)
def torch_command(factory, output, no_validate, inputs, rtol, atol, shapes, dtypes, input_names,
                  output_names, static_batch, dynamic, opset) -> int:  # fmt: skip
    """Export the torch.nn.Module that MODULE:FACTORY() returns (the current directory is
    importable), called on random example inputs of the given shapes.

    \b
    Examples:
      onnxpy convert torch mymodels:make_mlp --shape 1,20 -o mlp.onnx
      onnxpy convert torch mymodels:make_cnn --shape 1,3,32,32 --input-names image \\
          --output-names logits --dynamic image=2:height -o cnn.onnx
    """
    from onnxpy.cli import require
    from onnxpy.cli._progress import progress

    require("torch", "convert", "PyTorch conversion")
    from onnxpy.convert.torch import convert_torch

    axes: dict[str, dict[int, str]] = {}
    for spec in dynamic:
        name, _, rest = spec.partition("=")
        axis, _, label = rest.partition(":")
        if not name or not axis.isdigit():
            raise click.BadParameter(f"{spec!r}: expected NAME=AXIS:LABEL", param_hint="--dynamic")
        axes.setdefault(name, {})[int(axis)] = label or f"{name}_{axis}"
    with progress("exporting"):
        result = convert_torch(
            factory, output, shapes=[_shape(s) for s in shapes], dtypes=dtypes,
            input_names=[n for n in input_names.split(",") if n],
            output_names=[n for n in output_names.split(",") if n],
            dynamic_batch=not static_batch, dynamic_axes=axes, opset=opset,
            validate=not no_validate, inputs=inputs, **_tolerances(rtol, atol),
        )  # fmt: skip
    return _finish(result)


@command.command("transformers")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@_common
@click.option("--task", type=click.Choice(["feature-extraction", "sequence-classification"]),
              default="feature-extraction", show_default=True)  # fmt: skip
@click.option("--opset", type=int, default=17, show_default=True)
@click.option("--seq", type=int, default=16, show_default=True, help="Example sequence length.")
def transformers_command(directory, output, no_validate, inputs, rtol, atol, task, opset,
                         seq) -> int:  # fmt: skip
    """Export a local Hugging Face model directory (config.json + weights; offline).

    \b
    Examples:
      onnxpy convert transformers ./bert-tiny -o bert.onnx
      onnxpy convert transformers ./bert-tiny --task sequence-classification -o cls.onnx
    """
    from onnxpy.cli import require
    from onnxpy.cli._progress import progress

    require("transformers", "convert", "transformers conversion")
    require("torch", "convert", "transformers conversion")
    from onnxpy.convert.transformers import convert_transformers

    with progress("exporting"):
        result = convert_transformers(
            directory, output, task=task, opset=opset, seq=seq, validate=not no_validate,
            inputs=inputs, **_tolerances(rtol, atol),
        )  # fmt: skip
    return _finish(result)
