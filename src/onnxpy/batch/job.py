"""``onnxpy.batch.run``: a model over every row of a dataset, results in a Parquet file.

Locally the rows stream through one session in batches (:class:`BatchPredictor` called in
this process); with ``ray=True`` Ray Data reads and infers on the cluster
(:mod:`~onnxpy.batch.ray_data`). Either way this process reads the output batches in input
order, writes the rows that ran to the output file (a temporary name, renamed when complete, so
a failed job leaves no half file) and collects the refused rows with their index and reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from onnxpy.batch.predict import ERROR_COLUMN, BatchPredictor
from onnxpy.batch.ray_data import predictor_options, ray_batches
from onnxpy.batch.sources import Source, open_source
from onnxpy.errors import InvalidArgument

__all__ = ["run", "BatchResult"]

Progress = Callable[[int, int | None], None]


@dataclass
class BatchResult:
    """What a job did: rows read and written, the refused ones, and how fast."""

    rows: int = 0
    written: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0
    output: str | None = None
    table: pa.Table | None = None  # the output rows when no output file was given

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        where = f" -> {self.output}" if self.output else ""
        return (
            f"{self.rows:,} rows in {self.seconds:.2f} s ({self.rows_per_s:,.0f} rows/s), "
            f"{self.written:,} written{where}, {len(self.refused):,} refused"
        )


class _Writer:
    """Parquet output under a temporary name until :meth:`close`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tmp = f"{path}.partial-{os.getpid()}"
        self._writer: Any = None
        self.schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.schema = table.schema
            self._writer = pq.ParquetWriter(self.tmp, table.schema)
        elif not table.schema.equals(self.schema):
            table = table.cast(self.schema)
        self._writer.write_table(table)

    def close(self, empty_schema: pa.Schema | None) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:  # no row ran: an empty file still says so
            pq.write_table(pa.table({}, schema=empty_schema or pa.schema([])), self.tmp)
        else:
            self._writer.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


def _model_argument(model: Any) -> str | bytes:
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            from onnxpy.errors import NoSuchFile

            raise NoSuchFile(f"no model file {path}")
        return path
    if isinstance(model, bytes):
        return model
    if hasattr(model, "SerializeToString"):  # an onnx ModelProto
        return model.SerializeToString()
    raise InvalidArgument(
        f"model must be a path, bytes or a ModelProto, not {type(model).__name__}"
    )


def _local_batches(
    model: str | bytes, source: Source, batch_size: int, options: dict[str, Any]
) -> Iterator[pa.Table]:
    predictor = BatchPredictor(model, **options)
    for batch in source.batches(batch_size):
        yield predictor(batch)


def run(
    model: Any,
    source: Any,
    output: str | os.PathLike | None = None,
    *,
    batch_size: int = 4096,
    columns: Mapping[str, str | Sequence[str]] | None = None,
    keep: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    ray: bool = False,
    actors: int | None = None,
    address: str | None = None,
    intra_op_threads: int = 1,
    progress: Progress | None = None,
) -> BatchResult:
    """Run ``model`` over every row of ``source``; write the results to ``output`` (Parquet).

    Args:
        model: model path (on a cluster: readable at that path on every node), bytes or
            ModelProto.
        source: a .parquet file, a folder of them, a .npy or .csv file (paths may be globs),
            a pandas DataFrame, an Arrow table, or a Ray Dataset (which implies ``ray``).
        output: Parquet file to write; ``None`` keeps the output rows in ``result.table``.
        batch_size: rows per session run.
        columns: input name -> column, or list of scalar columns stacked into [rows, k];
            by default each input reads the column of its own name (a model with one input
            and data with one column need nothing).
        keep: columns copied next to the outputs (default: every column no input reads).
        outputs: model outputs to write (default: all).
        ray: run on Ray Data (``address``: the cluster; default a local Ray instance).
        actors: Ray actors, one session each (default: from the free CPUs, see
            :func:`~onnxpy.batch.ray_data.actor_plan`).
        intra_op_threads: BLAS threads per session.
        progress: called as ``progress(rows_done, total_rows_or_None)`` after each batch.

    Returns:
        :class:`BatchResult`; rows that could not be fed or made the model fail are in
        ``refused`` as (row index, reason) and left out of the output; the others are written.
    """
    if batch_size < 1:
        raise InvalidArgument(f"batch_size must be at least 1, got {batch_size}")
    model_arg = _model_argument(model)
    src = open_source(source)
    options = predictor_options(columns, keep, outputs, intra_op_threads)
    total = src.total_rows
    if ray or src.kind == "ray":
        stream = ray_batches(model_arg, src, batch_size, options, actors, address)
    else:
        stream = _local_batches(model_arg, src, batch_size, options)
    result = BatchResult(output=os.fspath(output) if output is not None else None)
    writer = _Writer(result.output) if result.output else None
    kept: list[pa.Table] = []
    schema = None
    start = time.perf_counter()
    try:
        for table in stream:
            errors = table.column(ERROR_COLUMN)
            good_table = table.drop_columns([ERROR_COLUMN])
            if errors.null_count != table.num_rows:
                ok = pc.is_null(errors)
                bad = np.flatnonzero(~np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool))
                reasons = errors.to_pylist()
                result.refused.extend((result.rows + int(r), reasons[r]) for r in bad)
                good_table = good_table.filter(ok)
            schema = schema or good_table.schema
            if good_table.num_rows:
                if writer is not None:
                    writer.write(good_table)
                else:
                    kept.append(good_table)
            result.rows += table.num_rows
            result.written += good_table.num_rows
            if progress is not None:
                progress(result.rows, total)
        if writer is not None:
            writer.close(schema)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    result.seconds = time.perf_counter() - start
    if writer is None:
        result.table = pa.concat_tables(kept) if kept else None
    return result
