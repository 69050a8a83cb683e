"""The README's serving journey, run from the README itself: its train.py block, its curl
request (the documented response must be what the server answers), and its query.py block
against a real ``onnxpy serve rf_iris.onnx``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.serving.conftest import ROOT, ServerProcess

pytestmark = pytest.mark.slow


def _serve_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("\n## Serve\n", 1)[1].split("\n## ", 1)[0]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def test_readme_serving_journey(tmp_path, monkeypatch):
    section = _serve_section()
    train, query = _blocks(section, "python")
    monkeypatch.chdir(tmp_path)
    exec(compile(train, "README train.py", "exec"), {})  # trains, converts, runs with onnxpy
    assert Path("rf_iris.onnx").exists()

    shell = next(b for b in _blocks(section, "bash") if "curl" in b)
    body = re.search(r"-d '(.*?)'", shell).group(1)
    documented = "".join(line.lstrip("#").strip() for line in shell.splitlines() if line[:1] == "#")
    srv = ServerProcess(str(tmp_path / "rf_iris.onnx"), "--no-access-log")
    try:
        srv.wait_ready()
        assert srv.http.startswith("127.0.0.1:")
        with srv.client() as http:
            # curl -d sends a form content type; the server reads the body as JSON regardless
            answer = http.post(
                "/v2/models/rf_iris/infer",
                content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        assert answer.status_code == 200
        assert answer.json() == json.loads(documented)
        script = query.replace("localhost:8000", srv.http).replace("localhost:8001", srv.grpc)
        exec(compile(script, "README query.py", "exec"), {})
    finally:
        srv.stop()
