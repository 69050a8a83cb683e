"""The command line: the demo journey and `onnxpy run`."""

from __future__ import annotations

import re
from pathlib import Path

import onnx
import pytest

import onnxpy
from onnxpy.cli import main
from onnxpy.cli.demo import run_demo
from tests.runtime.models import add_relu

ROOT = Path(__file__).resolve().parents[1]


def test_demo_agrees_with_scikit_learn(tmp_path):
    res = run_demo(str(tmp_path))
    assert res.rows == 45
    assert res.labels_equal == 45
    assert res.max_proba_diff <= 1e-5
    assert res.served_labels_equal == 45  # served by `onnxpy serve`, queried over KServe v2
    assert res.server_address.startswith("http://127.0.0.1:")
    assert res.agrees
    assert (tmp_path / "rf_iris.onnx").exists()


def test_demo_command_exits_zero(tmp_path, capsys):
    assert main(["demo", "--output-dir", str(tmp_path), "--no-serve"]) == 0
    out = capsys.readouterr().out
    assert "AGREES with scikit-learn" in out and "served" not in out


def test_run_command(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(add_relu(), path)
    assert main(["run", str(path), "--batch", "5"]) == 0
    assert "Y: float32 shape=[5, 3]" in capsys.readouterr().out


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    demo = re.search(r"^# 1\. install and run the demo.*\n(.*)$", readme, flags=re.M).group(1)
    tests = re.search(r"^# 2\. install and run the tests.*\n(.*)$", readme, flags=re.M).group(1)
    assert "onnxpy demo" in demo and "-c constraints.txt" in demo
    assert "-c constraints.txt" in tests, "the test command installs the locked versions"
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_version(capsys):
    from onnxpy import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"onnxpy {__version__}"


def test_errors_are_one_line_with_documented_exit_codes(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert main(["run", str(bad)]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: InvalidProtobuf:") and "\n" not in err
    assert main(["run", str(tmp_path / "missing.onnx")]) == 2
    assert main(["no-such-command"]) == 2
    with pytest.raises(onnxpy.InvalidProtobuf):  # --debug lets the traceback through
        main(["--debug", "run", str(bad)])
