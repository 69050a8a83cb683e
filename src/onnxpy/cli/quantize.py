"""``onnxpy quantize MODEL -o OUT --mode dynamic|static|int4|fp16``: quantize a model file."""

from __future__ import annotations

import sys
from pathlib import Path

import click

__all__ = ["command"]


class _Bar:
    """A rich progress bar over calibration batches, shown only on a terminal."""

    def __init__(self) -> None:
        self.progress = None
        self.task = None

    def start(self, total: int) -> None:
        if not sys.stderr.isatty():
            return
        from onnxpy.cli import require

        progress = require("rich.progress", "quant", "the progress bar")
        self.progress = progress.Progress(
            progress.TextColumn("calibrating"),
            progress.BarColumn(),
            progress.MofNCompleteColumn(),
            progress.TimeRemainingColumn(),
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("calibrating", total=total)

    def advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@click.command("quantize")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output model."
)
@click.option(
    "--mode",
    type=click.Choice(["dynamic", "static", "int4", "fp16"]),
    default="dynamic",
    show_default=True,
    help="8-bit weights (dynamic), 8-bit weights and activations (static), 4-bit weight-only "
    "MatMuls (int4) or float16 (fp16).",
)
@click.option(
    "--calibration-data",
    type=click.Path(exists=True),
    help="FILE.npz (one array per input, samples on axis 0) or a folder of .npz feeds.",
)
@click.option("--per-channel", is_flag=True, help="One scale per output channel of each weight.")
@click.option(
    "--exclude", multiple=True, metavar="NODE", help="Leave this node in float (repeatable)."
)
@click.option(
    "--format",
    "quant_format",
    type=click.Choice(["qdq", "qoperator"]),
    default="qdq",
    show_default=True,
)
@click.option(
    "--method",
    type=click.Choice(["minmax", "entropy", "percentile"]),
    default="minmax",
    show_default=True,
)
@click.option("--block-size", type=int, default=32, show_default=True, help="int4 block size.")
@click.option("--report", "want_report", is_flag=True, help="Print the per-node error report.")
@click.option("--report-json", type=click.Path(dir_okay=False), help="Write the report as JSON.")
@click.option(
    "--target-agreement",
    type=click.FloatRange(0, 1),
    help="Leave the worst nodes in float until the top-1 agreement (or cosine) reaches this.",
)
def command(
    model: str,
    output: str,
    mode: str,
    calibration_data: str | None,
    per_channel: bool,
    exclude: tuple[str, ...],
    quant_format: str,
    method: str,
    block_size: int,
    want_report: bool,
    report_json: str | None,
    target_agreement: float | None,
) -> int:
    """Quantize MODEL and write the result to OUT (standard ONNX that onnxruntime runs too).

    Exit codes: 0 done (and the target met, if given), 1 the target agreement was not met,
    3 invalid model or data, 4 rich missing for the progress bar (pip install "onnxpy[quant]").

    \b
    Examples:
      onnxpy quantize bert.onnx -o bert.int8.onnx
      onnxpy quantize resnet.onnx -o r8.onnx --mode static --calibration-data cal.npz --per-channel
      onnxpy quantize cnn.onnx -o cnn.int8.onnx --mode static --calibration-data cal/ --report
      onnxpy quantize mlp.onnx -o mlp.int8.onnx --target-agreement 0.99 --calibration-data val.npz
      onnxpy quantize llm.onnx -o llm.int4.onnx --mode int4 --block-size 32
      onnxpy quantize model.onnx -o model.fp16.onnx --mode fp16
    """
    from onnxpy.quantization.workflow import quantize_file

    bar = _Bar()
    try:
        result = quantize_file(
            model,
            output,
            mode=mode,
            calibration_data=calibration_data,
            per_channel=per_channel,
            exclude=exclude,
            quant_format=quant_format,
            method=method,
            block_size=block_size,
            report=want_report or bool(report_json),
            target_agreement=target_agreement,
            progress=bar.advance,
            on_calibration_start=bar.start,
        )
    finally:
        bar.stop()
    click.echo(f"wrote {output} ({Path(output).stat().st_size:,} bytes)")
    if result is not None:
        if want_report or target_agreement is not None:
            click.echo(result.table())
        if report_json:
            Path(report_json).write_text(result.to_json())
        if target_agreement is not None and result.value < target_agreement:
            click.echo(
                f"target {target_agreement} not met: {result.metric} {result.value:.4f}", err=True
            )
            return 1
    return 0
