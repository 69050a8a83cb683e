"""One session over table batches: the unit of work of both the local and the Ray Data path.

:class:`BatchPredictor` holds one :class:`onnxpy.InferenceSession` and turns a batch (an Arrow
table) into the output batch: the pass-through columns, one column per model output, and
:data:`ERROR_COLUMN` (null for a row that ran; why not, for a row that was refused). Refused
rows stay in the batch with null outputs, so that a batch keeps its row count and the caller,
which reads batches in order, knows each row's index. Ray Data runs it as the callable class of
``map_batches`` (one session per actor, built once); the local path calls it directly.

A row is refused when it cannot be fed (:class:`~onnxpy.batch.columns.InputPlan`) or when the
model fails on it: a failing batch is split in halves until the failing rows are alone, so one
bad row never costs the others their results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from onnxpy.batch.columns import InputPlan, output_array
from onnxpy.errors import Fail, InvalidArgument, OnnxpyError

__all__ = ["BatchPredictor", "ERROR_COLUMN"]

ERROR_COLUMN = "__onnxpy_error__"


class BatchPredictor:
    """``predictor(batch) -> output batch`` over one session (module docstring)."""

    def __init__(
        self,
        model: str | bytes,
        columns: Mapping[str, str | Sequence[str]] | None = None,
        keep: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        intra_op_threads: int = 1,
    ) -> None:
        from onnxpy import InferenceSession, SessionOptions

        options = SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        self.session = InferenceSession(model, options)
        self.columns = dict(columns or {})
        self.keep = None if keep is None else list(keep)
        names = [o.name for o in self.session.get_outputs()]
        unknown = sorted(set(outputs or ()) - set(names))
        if unknown:
            raise InvalidArgument(f"--outputs names {unknown}; the model's are {names}")
        self.outputs = list(outputs) if outputs else names
        self._plan: InputPlan | None = None
        self._schema: pa.Schema | None = None

    def _plan_for(self, schema: pa.Schema) -> InputPlan:
        if self._plan is None or not schema.equals(self._schema):
            self._plan = InputPlan(self.session.get_inputs(), schema, self.columns)
            self._schema = schema
            keep = (
                self.keep
                if self.keep is not None
                else [c for c in schema.names if c not in self._plan.used]
            )
            missing = [c for c in keep if c not in schema.names]
            if missing:
                raise InvalidArgument(f"--keep names columns the data does not have: {missing}")
            clash = sorted(set(keep) & set(self.outputs))
            if clash:
                raise InvalidArgument(
                    f"columns {clash} have the names of model outputs: leave them out with --keep"
                )
            self._keep = keep
        return self._plan

    def __call__(self, batch: pa.Table | pa.RecordBatch) -> pa.Table:
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        plan = self._plan_for(batch.schema)
        n = batch.num_rows
        feeds, good, reasons = plan.feeds(batch)
        rows = np.flatnonzero(good)
        values, failed = self._run(feeds, rows) if len(rows) else (None, {})
        reasons.update(failed)
        columns = {c: batch.column(c) for c in self._keep}
        ran_count = n - len(reasons)
        positions = None  # where each row's output is among the rows that ran (null: refused)
        if reasons:
            ran = np.ones(n, dtype=bool)
            ran[list(reasons)] = False
            index = np.full(n, -1, dtype=np.int64)
            index[ran] = np.arange(ran_count)
            positions = pa.array(index, mask=~ran)
        for name, value in zip(self.outputs, values or [None] * len(self.outputs)):
            if value is None:  # no row ran: an all-null column
                columns[name] = pa.nulls(n)
                continue
            array = output_array(name, value, ran_count)
            columns[name] = array if positions is None else array.take(positions)
        if reasons:
            errors = pa.array([reasons.get(r) for r in range(n)], type=pa.string())
        else:
            errors = pa.nulls(n, type=pa.string())
        columns[ERROR_COLUMN] = errors
        return pa.table(columns)

    def _run(
        self, feeds: dict[str, np.ndarray], rows: np.ndarray
    ) -> tuple[list[Any] | None, dict[int, str]]:
        """Run the good rows; on failure, halves until each failing row is alone.

        Returns the outputs of the rows that ran (in order) and {row: reason} of the others.
        """
        pieces: list[tuple[np.ndarray, list[Any]]] = []
        failed: dict[int, str] = {}

        def attempt(lo: int, hi: int) -> None:
            part = {k: v[lo:hi] for k, v in feeds.items()}
            try:
                pieces.append((rows[lo:hi], self.session.run(self.outputs, part)))
            except (OnnxpyError, ValueError) as e:
                if hi - lo == 1:
                    failed[int(rows[lo])] = f"the model failed on this row: {e}"
                    return
                mid = (lo + hi) // 2
                attempt(lo, mid)
                attempt(mid, hi)

        attempt(0, len(rows))
        if not pieces:
            if len(rows) > 1:  # every row fails alone: the model cannot run at all
                raise Fail(
                    f"the model fails on every row of the batch: {next(iter(failed.values()))}"
                )
            return None, failed
        if len(pieces) == 1:
            return pieces[0][1], failed
        merged = []
        for i in range(len(self.outputs)):
            parts = [p[1][i] for p in pieces]
            if isinstance(parts[0], list):
                merged.append([item for part in parts for item in part])
            else:
                merged.append(np.concatenate(parts, axis=0))
        return merged, failed
