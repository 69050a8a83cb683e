"""The onnxpy toolbox: one public function per step of the ONNX workflow.

Convert (``convert_sklearn``, ``convert_torch``, ``convert_transformers``), validate against the
source framework, inspect, check, run with intermediate values, compare node by node with another
runtime, optimize, extract, upgrade, benchmark (with a plot) and view the graph. Each ``onnxpy``
command calls one of these.

Names are imported on first use: ``import onnxpy.tools`` imports no optional extra (scikit-learn,
torch, matplotlib, ...); each function imports what it needs when called.
"""

from __future__ import annotations

from onnxpy._lazy import lazy_exports

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "make_feeds": "onnxpy.tools.io",
    "load_arrays": "onnxpy.tools.io",
    "save_arrays": "onnxpy.tools.io",
    "model_inputs": "onnxpy.tools.io",
    "run_model": "onnxpy.tools.run",
    "first_nonfinite": "onnxpy.tools.values",
    "inspect_model": "onnxpy.tools.inspect",
    "check_model": "onnxpy.tools.check",
    "compare_models": "onnxpy.tools.compare",
    "compare_outputs": "onnxpy.tools.compare",
    "optimize_model": "onnxpy.tools.optimize",
    "extract_model": "onnxpy.tools.extract",
    "upgrade_model": "onnxpy.tools.extract",
    "validate_model": "onnxpy.tools.validate",
    "bench_model": "onnxpy.tools.bench",
    "plot_bench": "onnxpy.tools.plot",
    "layout_graph": "onnxpy.tools.view.layout",
    "write_html": "onnxpy.tools.view",
    "write_svg": "onnxpy.tools.view",
    "view_model": "onnxpy.tools.view",
    "convert_sklearn": "onnxpy.convert.sklearn",
    "convert_torch": "onnxpy.convert.torch",
    "convert_transformers": "onnxpy.convert.transformers",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports("onnxpy.tools", _EXPORTS, globals())
