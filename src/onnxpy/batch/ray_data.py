"""The Ray Data path of a batch job: read on the cluster, infer in a pool of actors.

``map_batches`` runs :class:`~onnxpy.batch.predict.BatchPredictor` as a callable class in an
``ActorPoolStrategy`` pool: each actor builds one session once and keeps it. The pool is sized
so that Ray Data's read tasks (1 CPU each by default) still get a CPU: on a 2-core machine, two
actors at 1 CPU each would hold every CPU and the job would wait forever for its file listing,
silently. :func:`actor_plan` therefore leaves at least one CPU to the readers and splits the
rest between the actors. The dataset's order is preserved (``preserve_order``), so the driver,
which reads the output batches in order, knows every row's index.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa

from onnxpy.batch.predict import BatchPredictor
from onnxpy.batch.sources import Source
from onnxpy.errors import OnnxpyError

__all__ = ["actor_plan", "block_size", "ray_batches", "READ_RESERVE"]

READ_RESERVE = 1.0  # CPUs left to read tasks at least (a read task asks for one)
MIN_BLOCK_BYTES = 256 << 10


def actor_plan(cpus: float, actors: int | None = None) -> tuple[int, float]:
    """(actors, CPUs per actor) for a cluster with ``cpus`` CPUs free.

    At least one CPU (an eighth of the cluster on big ones) stays with the read tasks; the
    actors share the rest, at most one CPU each (a session runs with one BLAS thread). Without
    ``actors``, one actor per CPU they may use.
    """
    if actors is not None and actors < 1:
        raise ValueError(f"actors must be at least 1, got {actors}")
    usable = max(cpus - max(READ_RESERVE, cpus / 8), 0.25)
    count = actors or max(1, int(usable))
    return count, round(min(1.0, usable / count), 3)


def block_size(total_bytes: int, actors: int, default: int | None) -> int:
    """Blocks small enough that each actor gets about four of them (a file is read as one
    block up to Ray Data's default of 128 MiB, which would feed one actor only), but not under
    256 KiB, where per-block overheads dominate."""
    target = max(MIN_BLOCK_BYTES, total_bytes // (4 * actors))
    return min(target, default) if default else target


def _connect(address: str | None) -> bool:
    """Join Ray (or start a local instance); True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        ray.init(address=address, **quiet)
        return False
    ray.init(address="local", include_dashboard=False, **quiet)
    return True


def ray_batches(
    model: str | bytes,
    source: Source,
    batch_size: int,
    predictor: Mapping[str, Any],
    actors: int | None = None,
    address: str | None = None,
) -> Iterator[pa.Table]:
    """Output batches (with the error column), in input order, computed by Ray Data."""
    import ray
    import ray.data

    started = _connect(address)
    try:
        if isinstance(model, str):
            model = os.path.abspath(model)  # actors do not share the driver's directory
        cpus = ray.available_resources().get("CPU", 0.0)
        count, per_actor = actor_plan(cpus, actors)
        dataset = source.ray_dataset()
        context = dataset.context
        context.enable_progress_bars = False
        context.execution_options.preserve_order = True
        size = source.total_bytes
        if size:  # a read task cuts its output in blocks this big: enough for every actor
            context.target_max_block_size = block_size(size, count, context.target_max_block_size)
        output = dataset.map_batches(
            BatchPredictor,
            fn_constructor_kwargs={"model": model, **predictor},
            compute=ray.data.ActorPoolStrategy(size=count),
            num_cpus=per_actor,
            batch_size=batch_size,
            batch_format="pyarrow",
            zero_copy_batch=True,
        )
        try:
            yield from output.iter_batches(batch_size=None, batch_format="pyarrow")
        except Exception as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, OnnxpyError):  # a bad column, say: the actor's own error
                raise cause from None
            raise
    finally:
        if started:
            ray.shutdown()


def predictor_options(
    columns: Mapping[str, str | Sequence[str]] | None,
    keep: Sequence[str] | None,
    outputs: Sequence[str] | None,
    intra_op_threads: int,
) -> dict[str, Any]:
    return {
        "columns": dict(columns or {}),
        "keep": None if keep is None else list(keep),
        "outputs": None if outputs is None else list(outputs),
        "intra_op_threads": intra_op_threads,
    }
