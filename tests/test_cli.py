"""The command line: the demo journey and `onnxpy run`."""

from __future__ import annotations

import re
from pathlib import Path

import onnx
import pytest

from onnxpy.cli import main
from onnxpy.cli.demo import run_demo
from tests.runtime.models import add_relu

ROOT = Path(__file__).resolve().parents[1]


def test_demo_agrees_with_scikit_learn(tmp_path):
    res = run_demo(str(tmp_path))
    assert res.rows == 45
    assert res.labels_equal == 45
    assert res.max_proba_diff <= 1e-5
    assert res.agrees
    assert (tmp_path / "rf_iris.onnx").exists()


def test_demo_command_exits_zero(tmp_path, capsys):
    assert main(["demo", "--output-dir", str(tmp_path)]) == 0
    assert "AGREES with scikit-learn" in capsys.readouterr().out


def test_run_command(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(add_relu(), path)
    assert main(["run", str(path), "--batch", "5"]) == 0
    assert "Y: tensor(float) shape=[5, 3]" in capsys.readouterr().out


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^(python3 -m venv .*)$", readme, flags=re.M)
    assert len(commands) == 2, "the quick start has exactly two commands"
    assert "onnxpy demo" in commands[0]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("argv", [["--version"]])
def test_version(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert "onnxpy" in capsys.readouterr().out
