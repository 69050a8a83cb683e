"""Data and models for the batch tests: iris forests (skl2onnx) and a 100k-row Parquet file
with a few rows that cannot be fed, at known indices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROWS = 100_000
# row index -> what is wrong with it
BAD_ROWS = {
    7: "a null list",
    4_095: "3 values",  # the last row of the first 4096-row batch
    4_096: "a null value",  # the first row of the second
    55_555: "5 values",
    99_999: "a null list",
}


def features(rows: int = ROWS, seed: int = 0) -> np.ndarray:
    """Iris-like rows: iris samples with noise, float32 [rows, 4]."""
    from sklearn.datasets import load_iris

    x = load_iris().data.astype(np.float32)
    rng = np.random.default_rng(seed)
    picked = x[rng.integers(0, len(x), rows)]
    return picked + rng.normal(0, 0.2, picked.shape).astype(np.float32)


def write_parquet(path: Path, x: np.ndarray, bad: dict[int, str] = BAD_ROWS) -> None:
    """Columns id (int64) and X (list<float>: 4 values, except the bad rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    lengths = np.full(len(x), 4)
    valid = np.ones(len(x), dtype=bool)
    values, nulls, done = [], [], 0
    for row, what in sorted(bad.items()):
        values.append(x[done:row].ravel())
        nulls.append(np.zeros(values[-1].size, dtype=bool))
        part = x[row]
        if what.endswith("values"):
            lengths[row] = int(what.split()[0])
            part = np.resize(x[row], lengths[row])
        values.append(part)
        nulls.append(
            np.arange(len(part)) == 1 if what == "a null value" else np.zeros(len(part), dtype=bool)
        )
        valid[row] = what != "a null list"
        done = row + 1
    values.append(x[done:].ravel())
    nulls.append(np.zeros(values[-1].size, dtype=bool))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    flat = pa.array(np.concatenate(values), mask=np.concatenate(nulls))
    lists = pa.ListArray.from_arrays(pa.array(offsets), flat, mask=pa.array(~valid))
    table = pa.table({"id": np.arange(len(x), dtype=np.int64), "X": lists})
    pq.write_table(table, path, row_group_size=25_000)


def iris_models(folder: Path) -> tuple[object, Path, Path]:
    """A RandomForest on iris: (classifier, zipmap=False model, default ZipMap model)."""
    from tests.serving.models import iris_models as convert

    clf, _, zipmap, tensor = convert(folder)
    return clf, tensor, zipmap
