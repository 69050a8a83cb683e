"""Kernel modules load on first use, through the generated catalog."""

from __future__ import annotations

import json
import subprocess
import sys

from onnxpy.kernels import catalog, family_modules


def test_catalog_is_current():
    """Regenerate with ``python -m onnxpy.kernels.catalog`` when this fails."""
    assert catalog.scan() == catalog.MODULES
    assert set(m for mods in catalog.MODULES.values() for m in mods) <= set(family_modules())


_PROBE = """
import json, sys
import onnxpy
from onnxpy.kernels.registry import lookup
fam = lambda: sorted(m for m in sys.modules if m.startswith(("onnxpy.kernels.ai_onnx",
                                                              "onnxpy.kernels.com_microsoft")))
out = {"import": fam()}
out["relu"] = lookup("", "Relu", 14) is not None
out["after_relu"] = fam()
out["unknown"] = lookup("", "NoSuchOperator", 14) is None
out["after_unknown"] = fam()
print(json.dumps(out))
"""


def test_modules_import_on_first_use_and_unknown_ops_load_everything():
    out = json.loads(
        subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
        ).stdout
    )
    assert out["import"] == []  # import onnxpy loads no operator family
    assert out["relu"]
    assert "onnxpy.kernels.ai_onnx.activation" in out["after_relu"]
    assert "onnxpy.kernels.ai_onnx_ml.trees" not in out["after_relu"]
    assert out["unknown"]
    assert set(family_modules()) <= set(out["after_unknown"])
