"""The registry against the installed onnx's operator schemas."""

from __future__ import annotations

import inspect
from pathlib import Path

import onnx.defs

from onnxpy.kernels.coverage import coverage, markdown_table
from onnxpy.kernels.registry import registered_ops

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operators.md"


def test_every_schema_version_has_a_reviewed_kernel():
    """A new onnx release adding a version of an op fails here until a human looks at it."""
    gaps = {
        f"{r.domain or 'ai.onnx'}::{r.op_type}": r.unreviewed_versions
        for r in coverage()
        if r.unreviewed_versions
    }
    assert gaps == {}


def test_kernels_declare_every_schema_attribute_with_its_default():
    problems = []
    for (domain, op), kernels in registered_ops().items():
        for k in kernels:
            if k.attributes is None or domain not in ("", "ai.onnx.ml"):
                continue
            try:
                schema = onnx.defs.get_schema(op, k.since, domain)
            except onnx.defs.SchemaError:
                continue
            missing = set(schema.attributes) - set(k.attributes)
            if missing:
                problems.append(f"{op}@{k.since}: {sorted(missing)}")
            if k.factory:
                continue
            params = inspect.signature(k.fn).parameters
            for name, attr in schema.attributes.items():
                d = attr.default_value
                if name not in params or d.type == 0:
                    continue
                value = onnx.helper.get_attribute_value(d)
                if isinstance(value, bytes):
                    value = value.decode()
                default = params[name].default
                if isinstance(value, float) and isinstance(default, (int, float)):
                    ok = abs(default - value) <= 1e-6 * max(1.0, abs(value))
                elif isinstance(value, list):
                    ok = default is None or list(default) == [
                        v.decode() if isinstance(v, bytes) else v for v in value
                    ]
                else:
                    ok = default == value
                if (op, name, value) == ("GRU", "direction", "foward"):
                    ok = True  # a typo in the GRU-1 schema itself; 'forward' is what it means
                if not ok:
                    problems.append(f"{op}@{k.since}: {name} default {default!r} != {value!r}")
    assert problems == []


def test_operator_table_is_current():
    assert DOCS.read_text() == markdown_table(), "run: python scripts/operator_table.py"
