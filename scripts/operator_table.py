"""Write docs/operators.md, the operator coverage table (registry vs onnx.defs)."""

from __future__ import annotations

from pathlib import Path

from onnxpy.kernels.coverage import markdown_table

if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "docs" / "operators.md"
    out.write_text(markdown_table())
    print(f"wrote {out}")
