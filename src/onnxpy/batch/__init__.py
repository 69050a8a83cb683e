"""Batch inference over datasets: ``onnxpy batch`` and :func:`onnxpy.batch.run` (extra ``ray``
for Ray Data; pyarrow for the files).

A model runs over every row of a Parquet file, a folder of them, a .npy or .csv file, a pandas
or Arrow table, or a Ray Dataset; the outputs are written as columns of a Parquet file next to
the pass-through columns. Locally the rows stream through one session; with ``ray=True`` Ray
Data reads them and a pool of actors (one session each) runs the model. Rows that cannot be fed
are reported by index and left out; the others' results are complete.

Importing this package imports neither pyarrow nor Ray::

    from onnxpy.batch import run
    result = run("model.onnx", "data.parquet", "out.parquet", columns={"X": ["a", "b"]})
    print(result.summary(), result.refused[:5])
"""

from __future__ import annotations

from typing import Any

from onnxpy._lazy import lazy_exports

__all__ = ["run", "BatchResult", "BatchPredictor", "actor_plan"]

_WHERE = {
    "run": "onnxpy.batch.job",
    "BatchResult": "onnxpy.batch.job",
    "BatchPredictor": "onnxpy.batch.predict",
    "actor_plan": "onnxpy.batch.ray_data",
}

_lazy_getattr, __dir__ = lazy_exports("onnxpy.batch", _WHERE, globals())


def __getattr__(name: str) -> Any:
    try:
        return _lazy_getattr(name)
    except ImportError as e:
        raise ImportError(
            f'onnxpy.batch needs pyarrow ({e}): pip install "onnxpy[ray]" (Ray Data and '
            "pyarrow) or pip install pyarrow"
        ) from e
