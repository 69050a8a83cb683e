"""``onnxpy batch MODEL --input DATA --output OUT.parquet``: a model over every row of a dataset."""

from __future__ import annotations

import json
import logging

import click

__all__ = ["command"]

SHOWN_REFUSED = 10  # refused rows listed on the terminal (all of them go to --refused)


def _columns(pairs: tuple[str, ...]) -> dict[str, str | list[str]]:
    """``("X=a,b,c", "ids=id")`` -> {"X": ["a", "b", "c"], "ids": "id"}."""
    mapping: dict[str, str | list[str]] = {}
    for pair in pairs:
        name, sep, cols = pair.partition("=")
        names = [c.strip() for c in cols.split(",") if c.strip()]
        if not sep or not name.strip() or not names:
            raise click.BadParameter(f"{pair!r}: use INPUT=COLUMN or INPUT=COL1,COL2,...",
                                     param_hint="--columns")  # fmt: skip
        mapping[name.strip()] = names[0] if len(names) == 1 else names
    return mapping


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [n.strip() for n in text.split(",") if n.strip()]


@click.command("batch", context_settings={"max_content_width": 100})
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--input",
    "-i",
    "source",
    required=True,
    metavar="DATA",
    help="A .parquet file, a folder of .parquet files, a .npy file or a .csv file "
    "(a quoted glob works too).",
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="OUT.parquet",
    help="Parquet file for the results (written whole, or not).",
)
@click.option(
    "--batch-size",
    type=int,
    default=4096,
    show_default=True,
    help="Rows per session run (per Ray Data batch with --ray).",
)
@click.option(
    "--columns",
    "-c",
    "column_pairs",
    multiple=True,
    metavar="INPUT=COL[,COL...]",
    help="Where an input's values come from: one column (scalars, lists or tensors) "
    "or several scalar columns stacked into [rows, k]. Default: the column "
    "named like the input. Repeat for several inputs.",
)
@click.option(
    "--keep",
    default=None,
    metavar="COLS",
    help="Columns copied next to the outputs (comma-separated; '' for none). "
    "Default: every column that feeds no input, such as an id.",
)
@click.option(
    "--outputs",
    "output_names",
    default=None,
    metavar="NAMES",
    help="Model outputs to write (comma-separated). Default: all.",
)
@click.option(
    "--ray",
    "use_ray",
    is_flag=True,
    help="Run on Ray Data (extra 'ray'): read on the cluster, infer in a pool of "
    "actors holding one session each.",
)
@click.option(
    "--actors",
    type=int,
    default=None,
    metavar="K",
    help="With --ray: actors in the pool. Default: the free CPUs less at least one "
    "left to the read tasks.",
)
@click.option(
    "--address",
    default=None,
    metavar="ADDR",
    help="With --ray: the cluster to join ('auto', 'ray://host:10001'). Default: a "
    "local Ray instance for this job.",
)
@click.option(
    "--refused",
    "refused_file",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Write every refused row as a JSON line {row, reason}.",
)
@click.option("--threads", type=int, default=1, show_default=True, help="BLAS threads per session.")
def command(
    model: str,
    source: str,
    output: str,
    batch_size: int,
    column_pairs: tuple[str, ...],
    keep: str | None,
    output_names: str | None,
    use_ray: bool,
    actors: int | None,
    address: str | None,
    refused_file: str | None,
    threads: int,
) -> int:
    """Run MODEL over every row of a dataset; write the outputs as Parquet columns.

    Outputs become columns next to the pass-through columns: a [rows] output a scalar column,
    [rows, k] a fixed-size list, higher ranks an Arrow tensor, skl2onnx's ZipMap a map. Rows
    that cannot be fed (null, wrong length, a value that does not convert) or that make the
    model fail are refused: reported by row index (0-based, in file order) and left out; the
    others are all written. A progress bar shows on a terminal, then a summary.

    Exit codes: 0 every row written; 1 some rows refused (the others are written); 3 invalid
    model, data or option; 4 a missing extra.

    \b
    Examples:
      onnxpy batch rf_iris.onnx -i flowers.parquet -o predictions.parquet
      onnxpy batch rf_iris.onnx -i flowers.csv -o out.parquet \\
          -c X=sepal_length,sepal_width,petal_length,petal_width --keep id
      onnxpy batch mlp.onnx -i images.npy -o out.parquet --batch-size 256
      onnxpy batch rf_iris.onnx -i 'shards/*.parquet' -o out.parquet --ray --actors 4
      onnxpy batch rf_iris.onnx -i /shared/flowers/ -o out.parquet --ray --address auto
    """
    from onnxpy.cli import require

    require("pyarrow", "batch", "onnxpy batch")
    given = [name for name, v in (("--actors", actors), ("--address", address)) if v is not None]
    if given and not use_ray:
        raise click.UsageError(f"{', '.join(given)} only apply with --ray")
    if use_ray:
        require("ray.data", "ray", "onnxpy batch --ray")
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    from onnxpy.batch import run
    from onnxpy.cli._progress import progress

    with progress("rows") as update:
        result = run(
            model,
            source,
            output,
            batch_size=batch_size,
            columns=_columns(column_pairs),
            keep=_names(keep),
            outputs=_names(output_names),
            ray=use_ray,
            actors=actors,
            address=address,
            intra_op_threads=threads,
            progress=lambda done, total: update(done, total or 0),
        )
    click.echo(result.summary())
    if result.refused:
        shown = result.refused[:SHOWN_REFUSED]
        more = len(result.refused) - len(shown)
        click.echo(f"refused rows{f' (first {len(shown)})' if more else ''}:", err=True)
        for row, reason in shown:
            click.echo(f"  row {row}: {reason}", err=True)
        if more:
            where = f" (all in {refused_file})" if refused_file else " (--refused FILE lists all)"
            click.echo(f"  ... and {more:,} more{where}", err=True)
    if refused_file:
        with open(refused_file, "w") as f:
            for row, reason in result.refused:
                f.write(json.dumps({"row": row, "reason": reason}) + "\n")
    return 1 if result.refused else 0
