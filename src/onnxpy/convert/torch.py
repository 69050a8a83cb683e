"""PyTorch -> ONNX through torch.onnx, from a module or a ``module:factory`` spec.

The exporter is torch's TorchScript one (``dynamo=False``), chosen deliberately: it needs no
further package (the dynamo exporter needs ``onnxscript`` and ``onnx_ir``), it exports the small
models of this workflow in about a second, and it writes the graphs the rest of onnxpy (its
fusions, the benchmark zoo) is built and tested on. Switch when torch removes it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onnxpy.convert._common import Conversion, need
from onnxpy.errors import InvalidArgument

__all__ = ["load_factory", "convert_torch", "torch_runner", "export_module"]


def load_factory(spec: str) -> Any:
    """``package.module:factory`` -> ``factory()`` (a torch.nn.Module), in eval mode.

    The current directory is importable, as ``python -m`` would make it.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidArgument(f"{spec!r}: expected module:factory, e.g. mymodels:make_net")
    need("torch")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InvalidArgument(f"{spec}: cannot import {module_name} ({e})") from e
    factory = getattr(module, attr, None)
    if factory is None:
        raise InvalidArgument(f"{spec}: {module_name} has no attribute {attr!r}")
    net = factory() if callable(factory) and not hasattr(factory, "forward") else factory
    if not hasattr(net, "forward"):
        raise InvalidArgument(f"{spec} gave {type(net).__name__}, not a torch.nn.Module")
    return net.eval()


_DTYPES = {"float32": "float32", "float": "float32", "float16": "float16", "float64": "float64",
           "int64": "int64", "int32": "int32", "bool": "bool"}  # fmt: skip


def _example(shape: Sequence[int], dtype: str, seed: int) -> Any:
    import torch

    gen = torch.Generator().manual_seed(seed)
    dt = getattr(torch, _DTYPES.get(dtype, dtype))
    if dt.is_floating_point:
        return torch.randn(*shape, generator=gen).to(dt)
    if dt == torch.bool:
        return torch.randint(0, 2, tuple(shape), generator=gen).bool()
    return torch.randint(0, 10, tuple(shape), generator=gen).to(dt)


def export_module(
    module: Any,
    args: tuple,
    path: str,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
    opset: int,
) -> None:
    """torch.onnx.export with the TorchScript exporter; errors as one InvalidArgument."""
    import warnings

    import torch

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                path,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()},
                opset_version=opset,
                dynamo=False,
            )
    except Exception as e:  # noqa: BLE001 - the exporter raises many classes
        raise InvalidArgument(
            f"torch.onnx could not export the model: {type(e).__name__}: {e}"
        ) from e


def convert_torch(
    module: Any,
    output: str | os.PathLike,
    *,
    shapes: Sequence[Sequence[int]],
    dtypes: Sequence[str] = (),
    input_names: Sequence[str] = (),
    output_names: Sequence[str] = (),
    dynamic_batch: bool = True,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    opset: int = 17,
    validate: bool = True,
    inputs: Sequence[str] = (),
    batch: int = 2,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> Conversion:
    """Export a module (or a ``module:factory`` spec) called on example inputs of ``shapes``.

    Names default to ``input``/``input_1``... and ``output``/``output_1``...; with
    ``dynamic_batch`` axis 0 of every input and output is the symbolic ``batch``;
    ``dynamic_axes`` adds more ({name: {axis: label}}).
    """
    need("torch")
    import torch

    if isinstance(module, str):
        module = load_factory(module)
    module.eval()
    if not shapes:
        raise InvalidArgument("give the example input shapes (--shape 1,3,32,32 per input)")
    dtypes = list(dtypes) + ["float32"] * (len(shapes) - len(dtypes))
    args = tuple(_example(s, d, i) for i, (s, d) in enumerate(zip(shapes, dtypes)))
    names_in = list(input_names) or [f"input_{i}" if i else "input" for i in range(len(args))]
    if len(names_in) != len(args):
        raise InvalidArgument(f"{len(names_in)} input names for {len(args)} example inputs")
    with torch.no_grad():
        example_out = module(*args)
    n_out = len(example_out) if isinstance(example_out, (tuple, list)) else 1
    names_out = list(output_names) or [f"output_{i}" if i else "output" for i in range(n_out)]
    if len(names_out) != n_out:
        raise InvalidArgument(f"{len(names_out)} output names for {n_out} outputs of the module")
    axes: dict[str, dict[int, str]] = {}
    if dynamic_batch:
        axes = {n: {0: "batch"} for n in names_in + names_out}
    for name, extra in (dynamic_axes or {}).items():
        axes.setdefault(name, {}).update(extra)
    path = os.fspath(output)
    export_module(module, args, path, names_in, names_out, axes, opset)
    import onnx

    result = Conversion(path, onnx.load(path))
    if validate:
        from onnxpy.tools.validate import validate_model as run_validation

        result.validation = run_validation(
            module, path, inputs=inputs, batch=batch, rtol=rtol, atol=atol
        )
    return result


def torch_runner(module: Any, input_names: Sequence[str], output_names: Sequence[str]):
    """``run(feeds) -> {output name: array}``: the module called on the feeds in input order."""
    import torch

    def run(feeds: dict) -> dict:
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in input_names]
        with torch.no_grad():
            out = module(*args)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        return {n: o.detach().numpy() for n, o in zip(output_names, outs)}

    return run
