"""``onnxpy bench MODEL``: runtimes side by side in fresh processes; table and bar chart."""

from __future__ import annotations

import json

import click

from onnxpy.cli.run import INPUT_HELP

__all__ = ["command"]


@click.command("bench")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--runtimes", default="onnxpy,onnxruntime", show_default=True,
              metavar="onnxpy,onnxruntime,reference,sklearn:FILE")  # fmt: skip
@click.option("--batch", default="1", show_default=True, metavar="1,32", help="Batch sizes.")
@click.option("--seconds", type=float, default=1.0, show_default=True,
              help="Time spent repeating each measurement.")  # fmt: skip
@click.option("--threads", type=int, default=0, help="Threads for every runtime (0: default).")
@click.option("--input", "-i", "inputs", multiple=True, metavar="SPEC", help=INPUT_HELP)
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a bar chart (PNG).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the results.")
@click.option("--trust-pickle", is_flag=True,
              help="Allow a sklearn:FILE runtime to unpickle FILE (it runs code).")  # fmt: skip
def command(model, runtimes, batch, seconds, threads, inputs, plot, json_path, trust_pickle):
    """Time MODEL on several runtimes, each in a fresh process: session creation, median and
    p90 latency, throughput and peak memory per batch size; optionally a log-scale bar chart
    of the median prediction time per runtime, one group per batch size.

    \b
    Examples:
      onnxpy bench model.onnx
      onnxpy bench model.onnx --runtimes onnxpy,onnxruntime,reference --batch 1,32 --plot b.png
      onnxpy bench forest.onnx --runtimes onnxpy,onnxruntime,sklearn:forest.pkl --trust-pickle
    """
    from onnxpy.cli._progress import progress
    from onnxpy.tools.bench import bench_model

    if plot:
        from onnxpy.cli import require

        require("matplotlib", "bench", "the --plot chart")
    try:
        batches = [int(b) for b in batch.split(",") if b]
    except ValueError:
        raise click.BadParameter(
            f"{batch!r}: expected sizes like 1,32", param_hint="--batch"
        ) from None
    with progress("benchmarking") as update:
        report = bench_model(
            model, runtimes, batches, inputs=inputs, seconds=seconds, threads=threads,
            trust_pickle=trust_pickle, progress=update,
        )  # fmt: skip
    click.echo(report.format())
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report.to_dict(), f, indent=2)
    if plot:
        from onnxpy.tools.plot import plot_bench

        plot_bench(report, plot)
        click.echo(f"chart written to {plot}")
    return 1 if any(r.error for r in report.rows) else 0
