"""``onnxpy run MODEL``: run a model on random (or .npy) inputs and print the outputs' summary."""

from __future__ import annotations

import argparse
import time

import numpy as np

__all__ = ["add_parser", "random_feeds"]


def random_feeds(sess, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs matching the session's declared inputs (symbolic dims -> ``batch``)."""
    from onnxpy.types import ELEM_TYPE_TO_DTYPE

    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in sess.get_inputs():
        tp = arg._type_proto
        if tp is None or tp.WhichOneof("value") != "tensor_type":
            raise SystemExit(f"input '{arg.name}' is {arg.type}: give it with --input")
        dtype = ELEM_TYPE_TO_DTYPE[tp.tensor_type.elem_type]
        shape = [d if isinstance(d, int) else batch for d in arg.shape]
        if dtype.kind == "f":
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[arg.name] = rng.integers(0, 10, size=shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[arg.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise SystemExit(f"input '{arg.name}' is {arg.type}: give it with --input")
    return feeds


def _main(args: argparse.Namespace) -> int:
    import onnxpy as rt

    sess = rt.InferenceSession(args.model)
    feeds = random_feeds(sess, args.batch)
    for spec in args.input or []:
        name, _, path = spec.partition("=")
        feeds[name] = np.load(path, allow_pickle=False)
    t0 = time.perf_counter()
    outs = sess.run(None, feeds)
    dt = time.perf_counter() - t0
    for arg, value in zip(sess.get_outputs(), outs):
        if isinstance(value, np.ndarray):
            print(f"{arg.name}: {arg.type} shape={list(value.shape)}")
        else:
            print(f"{arg.name}: {arg.type} ({type(value).__name__})")
    print(f"ran in {dt * 1e3:.2f} ms")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a model on random or given inputs")
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=1, help="value of symbolic dimensions")
    p.add_argument("--input", action="append", help="NAME=file.npy (repeatable)")
    p.set_defaults(func=_main)
