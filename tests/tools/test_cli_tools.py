"""What every toolbox command shares: examples in --help, lazy imports, quiet pipes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from onnxpy.cli import COMMANDS

EXTRAS = ("torch", "sklearn", "skl2onnx", "transformers", "matplotlib", "onnxruntime",
          "onnx.reference", "selenium", "rich", "netron")  # fmt: skip


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - {"demo"}))
def test_every_command_has_examples_in_help(cli, name):
    res = cli(name, "--help")
    assert res.code == 0 and "Examples:" in res.out and f"onnxpy {name}" in res.out, res


@pytest.mark.parametrize("kind", ["sklearn", "torch", "transformers"])
def test_every_converter_has_examples_in_help(cli, kind):
    res = cli("convert", kind, "--help")
    assert res.code == 0 and "Examples:" in res.out and f"onnxpy convert {kind}" in res.out


def test_importing_the_toolbox_imports_no_extra():
    code = (
        "import sys, onnxpy.tools, onnxpy.convert, onnxpy.cli; "
        "from onnxpy.tools import check_model, inspect_model; "
        f"print([m for m in {EXTRAS!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_functions_are_reachable_from_onnxpy_tools():
    import onnxpy.tools as tools

    for name in tools.__all__:
        assert callable(getattr(tools, name)), name


def test_commands_are_quiet_in_pipes(cnn_path, tmp_path):
    """No progress bar or colour codes when stdout/stderr are not a terminal."""
    out = subprocess.run(
        [sys.executable, "-m", "onnxpy", "compare", str(cnn_path), "--against", "reference"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0 and out.stderr == "" and "\x1b[" not in out.stdout
