"""Write a model optimized by onnxpy's graph optimizer, with a before/after node count table.

Level ``basic`` uses standard ONNX operators only, so its output loads in onnxruntime (or any
runtime); ``extended`` and ``all`` add fusions into com.microsoft operators. ``fix_shapes`` makes
dynamic input dimensions static first, which lets shape and constant folding go further.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import onnx

from onnxpy.errors import InvalidArgument
from onnxpy.tools.io import load_model_proto
from onnxpy.tools.shapes import fix_shapes

__all__ = ["LEVELS", "OptimizeReport", "optimize_model", "save_model"]

LEVELS = {"disabled": 0, "basic": 1, "extended": 2, "all": 99}
_EXTERNAL_ABOVE = 1_800_000_000  # protobuf cannot serialize a message over 2 GB


@dataclass
class OptimizeReport:
    path: str
    level: str
    before: Counter = field(default_factory=Counter)
    after: Counter = field(default_factory=Counter)
    passes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"path": self.path, "level": self.level, "before": dict(self.before),
                "after": dict(self.after), "passes": self.passes}  # fmt: skip

    def format(self) -> str:
        ops = sorted(set(self.before) | set(self.after), key=lambda k: (-self.before[k], k))
        width = max([len(o) for o in ops] + [7])
        lines = [f"{'op type':<{width}} {'before':>7} {'after':>7} {'change':>7}"]
        for op in ops:
            b, a = self.before[op], self.after[op]
            change = f"{a - b:+d}" if a != b else ""
            lines.append(f"{op:<{width}} {b:>7} {a:>7} {change:>7}")
        b, a = sum(self.before.values()), sum(self.after.values())
        lines.append(f"{'total':<{width}} {b:>7} {a:>7} {a - b:>+7d}")
        lines.append(f"wrote {self.path} (level {self.level})")
        return "\n".join(lines)


def _ops(model: onnx.ModelProto) -> Counter:
    return Counter(
        f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
        for n in model.graph.node
    )


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Save ``model``; weights go to ``<name>.data`` beside it when the file would pass 2 GB."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if model.ByteSize() > _EXTERNAL_ABOVE:
        onnx.save_model(
            model,
            path,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=os.path.basename(path) + ".data",
        )
    else:
        onnx.save_model(model, path)


def optimize_model(
    model: str | os.PathLike,
    output: str | os.PathLike,
    level: str = "basic",
    fix_shape: Mapping[str, Sequence[int]] | None = None,
) -> OptimizeReport:
    """Optimize the model at ``model`` at ``level`` and write it to ``output``."""
    from onnxpy.passes import PassManager, passes_for_level

    if level not in LEVELS:
        raise InvalidArgument(f"--level {level!r}: choose one of {', '.join(LEVELS)}")
    path = os.fspath(model)
    proto = load_model_proto(path)
    report = OptimizeReport(os.fspath(output), level, before=_ops(proto))
    if fix_shape:
        proto = fix_shapes(proto, fix_shape)
    manager = PassManager(passes_for_level(LEVELS[level]))
    proto = manager.run(proto, os.path.dirname(os.path.abspath(path)))
    report.passes = sorted({name for _, name in manager.applied})
    report.after = _ops(proto)
    save_model(proto, output)
    return report
