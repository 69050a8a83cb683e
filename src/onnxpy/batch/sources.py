"""What a batch job reads: Parquet files, a .npy array, a CSV file, an in-memory table.

:func:`open_source` recognises the input and gives a :class:`Source`, which streams Arrow
batches in a fixed order (files sorted by path, rows in file order) for the local path, and
makes the equivalent Ray Dataset for the Ray path (read there by Ray Data's own readers, in the
same order). A .npy array becomes one column, :data:`NPY_COLUMN`, rows along its first axis.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from onnxpy.errors import InvalidArgument, NoSuchFile

__all__ = ["Source", "open_source", "NPY_COLUMN"]

NPY_COLUMN = "data"  # Ray Data's name for the array read from a .npy file; the same here


@dataclass
class Source:
    """A job's input; ``kind`` is parquet, csv, npy, table or ray."""

    kind: str
    paths: list[str] = field(default_factory=list)
    table: pa.Table | None = None
    dataset: Any = None  # a Ray Dataset given by the caller

    @property
    def total_rows(self) -> int | None:
        """Rows to expect, when known without reading the data (for the progress bar)."""
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            return sum(pq.ParquetFile(p).metadata.num_rows for p in self.paths)
        if self.kind == "npy":
            return int(np.load(self.paths[0], mmap_mode="r").shape[0])
        if self.kind == "table":
            return self.table.num_rows
        return None

    @property
    def total_bytes(self) -> int | None:
        """Roughly how many bytes the rows take in memory (to size Ray Data's blocks)."""
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            meta = [pq.ParquetFile(p).metadata for p in self.paths]
            return sum(
                m.row_group(i).total_byte_size for m in meta for i in range(m.num_row_groups)
            )
        if self.kind in ("csv", "npy"):
            return sum(os.path.getsize(p) for p in self.paths)
        if self.kind == "table":
            return self.table.nbytes
        return None

    def batches(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        """Batches of at most ``batch_size`` rows, in order (local path)."""
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            for path in self.paths:
                yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size)
        elif self.kind == "csv":
            import pyarrow.csv as pcsv

            for path in self.paths:
                reader = pcsv.open_csv(path)
                yield from _rebatch(reader, batch_size)
        elif self.kind == "npy":
            array = np.load(self.paths[0], mmap_mode="r")
            for start in range(0, array.shape[0], batch_size):
                yield _npy_batch(np.ascontiguousarray(array[start : start + batch_size]))
        elif self.kind == "table":
            yield from self.table.to_batches(max_chunksize=batch_size)
        else:
            raise InvalidArgument("a Ray Dataset is read by Ray: run the job with ray=True")

    def ray_dataset(self) -> Any:
        """The same rows as a Ray Dataset (Ray Data reads the files itself, on the cluster)."""
        import ray.data

        if self.kind == "parquet":
            return ray.data.read_parquet(self.paths)
        if self.kind == "csv":
            return ray.data.read_csv(self.paths)
        if self.kind == "npy":
            return ray.data.read_numpy(self.paths)
        if self.kind == "table":
            return ray.data.from_arrow(self.table)
        return self.dataset


def _rebatch(batches: Any, size: int) -> Iterator[pa.RecordBatch]:
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        pending.append(batch)
        rows += batch.num_rows
        while rows >= size:
            table = pa.Table.from_batches(pending).combine_chunks()
            yield from table.slice(0, size).to_batches()
            rest = table.slice(size)
            pending, rows = (rest.to_batches(), rest.num_rows)
    if rows:
        yield from pa.Table.from_batches(pending).combine_chunks().to_batches()


def _npy_batch(array: np.ndarray) -> pa.RecordBatch:
    if array.ndim == 1:
        column = pa.array(array)
    else:
        column = pa.FixedShapeTensorArray.from_numpy_ndarray(array)
    return pa.RecordBatch.from_arrays([column], [NPY_COLUMN])


def _parquet_files(path: Path) -> list[str]:
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*.parquet") if p.is_file())
        if not files:
            raise NoSuchFile(f"no .parquet files under {path}")
        return files
    return [str(path)]


def open_source(source: Any) -> Source:
    """A path (file, folder of Parquet files, glob), a pandas DataFrame, an Arrow table or a
    Ray Dataset -> :class:`Source`."""
    if isinstance(source, pa.Table):
        return Source("table", table=source)
    if isinstance(source, pa.RecordBatch):
        return Source("table", table=pa.Table.from_batches([source]))
    if type(source).__module__.startswith("pandas"):
        return Source("table", table=pa.Table.from_pandas(source, preserve_index=False))
    if type(source).__module__.startswith("ray.data"):
        return Source("ray", dataset=source)
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidArgument(
            f"cannot read {type(source).__name__}: give a path, a pandas DataFrame, an Arrow "
            "table or a Ray Dataset"
        )
    text = os.fspath(source)
    paths = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
    if not paths:
        raise NoSuchFile(f"no file matches {text}")
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise NoSuchFile(f"no such file or folder: {missing[0]}")
    first = Path(paths[0])
    suffixes = {Path(p).suffix.lower() for p in paths if not Path(p).is_dir()}
    if first.is_dir() or suffixes <= {".parquet", ".pq"}:
        files = [f for p in paths for f in _parquet_files(Path(p))]
        return Source("parquet", paths=files)
    if suffixes == {".csv"}:
        return Source("csv", paths=paths)
    if suffixes == {".npy"}:
        if len(paths) != 1:
            raise InvalidArgument("give one .npy file (its rows feed the model's one input)")
        return Source("npy", paths=paths)
    raise InvalidArgument(
        f"cannot read {text}: give a .parquet file, a folder of .parquet files, a .npy file or "
        "a .csv file"
    )
