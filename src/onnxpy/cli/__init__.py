"""The ``onnxpy`` command line: one module per subcommand, each calling one public function.

Commands are loaded on first use (``onnxpy --help`` imports none of them), so a command whose
optional extra is missing never breaks the others. Every failure ends as one line on stderr and a
documented exit code; ``--debug`` shows the traceback instead.

Exit codes: 0 success; 1 a check failed (validation mismatch, invalid model in ``check``,
disagreement); 2 usage error; 3 invalid model, input or argument (an onnxpy error); 4 an optional
dependency is missing (the message names the extra); 130 interrupted.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click

__all__ = ["main", "cli", "COMMANDS", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INVALID"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INVALID = 3
EXIT_MISSING_EXTRA = 4
EXIT_INTERRUPTED = 130

# name -> (module under onnxpy.cli, one-line help shown by `onnxpy --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "Train, convert and run a RandomForest on iris, checked against sklearn."),
    "run": ("run", "Run a model once; any value as output, NaN hunt, golden files."),
    "inspect": ("inspect", "Versions, inputs/outputs, ops, weights and FLOPs of a model."),
    "check": ("check", "Checker, shape inference and onnxpy's validation: every problem."),
    "convert": ("convert", "scikit-learn, PyTorch or transformers model -> ONNX (validated)."),
    "validate": ("validate", "Source framework model vs the ONNX model run by onnxpy."),
    "compare": ("compare", "Node by node vs onnxruntime, onnx.reference or another model."),
    "optimize": ("optimize", "Write the model optimized by onnxpy; node counts before/after."),
    "extract": ("extract", "The subgraph between named values."),
    "upgrade": ("upgrade", "Convert a model to another opset."),
    "bench": ("bench", "Time runtimes in fresh processes; table and bar chart."),
    "view": ("view", "The graph as a page (HTML/SVG, timings, diff) or in Netron."),
    "quantize": ("quantize", "Quantize a model (dynamic, static, int4 weight-only, float16)."),
    "serve": ("serve", "Serve models over KServe v2 REST and gRPC (Triton-compatible)."),
    "batch": ("batch", "Run a model over every row of a dataset (Parquet out; Ray Data)."),
}


class MissingExtra(click.ClickException):
    """An optional dependency is not installed; the message says which extra brings it."""

    exit_code = EXIT_MISSING_EXTRA


def require(module: str, extra: str, purpose: str = "") -> object:
    """Import ``module`` or fail with a message naming ``pip install "onnxpy[extra]"``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        what = f" for {purpose}" if purpose else ""
        raise MissingExtra(
            f'{module} is needed{what} but is not installed ({e}): pip install "onnxpy[{extra}]"'
        ) from e


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module = importlib.import_module(f"onnxpy.cli.{entry[0]}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="onnxpy", prog_name="onnxpy", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """onnxpy: an ONNX runtime and toolbox in Python.

    \b
    Examples:
      onnxpy demo
      onnxpy run model.onnx --batch 4
      onnxpy convert sklearn model.pkl -o model.onnx --trust-pickle
      onnxpy compare model.onnx --against onnxruntime
      onnxpy bench model.onnx --batch 1,32 --plot bench.png
      onnxpy view model.onnx --html model.html
      onnxpy serve model.onnx
      onnxpy batch model.onnx -i data.parquet -o predictions.parquet
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``onnxpy`` console script; returns the exit code."""
    from onnxpy.errors import OnnxpyError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        result = cli.main(args=args, prog_name="onnxpy", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        if debug:
            raise
        e.show()
        return int(e.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except OnnxpyError as e:
        if debug:
            raise
        click.echo(f"error: {type(e).__name__}: {e}", err=True)
        return EXIT_INVALID
    except (OSError, ValueError) as e:
        if debug:
            raise
        click.echo(f"error: {type(e).__name__}: {e}", err=True)
        return EXIT_INVALID
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
