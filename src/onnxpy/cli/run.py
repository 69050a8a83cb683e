"""``onnxpy run MODEL``: run a model on random (or .npy) inputs and print the outputs' summary."""

from __future__ import annotations

import time

import click
import numpy as np

__all__ = ["command", "random_feeds"]


def random_feeds(sess, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs matching the session's declared inputs (symbolic dims -> ``batch``)."""
    from onnxpy.types import ELEM_TYPE_TO_DTYPE

    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in sess.get_inputs():
        tp = arg._type_proto
        if tp is None or tp.WhichOneof("value") != "tensor_type":
            raise click.UsageError(f"input '{arg.name}' is {arg.type}: give it with --input")
        dtype = ELEM_TYPE_TO_DTYPE[tp.tensor_type.elem_type]
        shape = [d if isinstance(d, int) else batch for d in arg.shape]
        if dtype.kind == "f":
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[arg.name] = rng.integers(0, 10, size=shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[arg.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise click.UsageError(f"input '{arg.name}' is {arg.type}: give it with --input")
    return feeds


@click.command("run")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--batch", type=int, default=1, show_default=True, help="Value of symbolic dims.")
@click.option("--input", "inputs", multiple=True, metavar="NAME=FILE.npy", help="Repeatable.")
def command(model: str, batch: int, inputs: tuple[str, ...]) -> int:
    """Run MODEL on random inputs (or given .npy files) and print the outputs' summary.

    \b
    Examples:
      onnxpy run model.onnx
      onnxpy run model.onnx --batch 8 --input X=x.npy
    """
    import onnxpy as rt

    sess = rt.InferenceSession(model)
    feeds = random_feeds(sess, batch)
    for spec in inputs:
        name, _, path = spec.partition("=")
        feeds[name] = np.load(path, allow_pickle=False)
    t0 = time.perf_counter()
    outs = sess.run(None, feeds)
    dt = time.perf_counter() - t0
    for arg, value in zip(sess.get_outputs(), outs):
        if isinstance(value, np.ndarray):
            click.echo(f"{arg.name}: {arg.type} shape={list(value.shape)}")
        else:
            click.echo(f"{arg.name}: {arg.type} ({type(value).__name__})")
    click.echo(f"ran in {dt * 1e3:.2f} ms")
    return 0
