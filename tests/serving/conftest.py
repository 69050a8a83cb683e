"""Real servers for the tests: ``python -m onnxpy serve`` on free loopback ports, stopped after.

Each server binds port 0 (the kernel picks a free port, so parallel test workers never collide)
and prints the addresses it got on its first stderr line; :class:`ServerProcess` reads them and
waits until the server answers. Tests talk to it with tritonclient and httpx, as users would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the server tests need the serve extra")
pytest.importorskip("tritonclient.http", reason="the server tests need tritonclient (dev extra)")

import httpx  # noqa: E402

from onnxpy.serving.server import LISTENING  # noqa: E402
from tests.serving.models import triton_repository  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """``onnxpy serve ARGS`` in a subprocess; ``http``/``grpc`` are host:port strings."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, ports: bool = True) -> None:
        cmd = [sys.executable, "-m", "onnxpy", "serve", *args]
        if ports:
            cmd += ["--http-port", "0", "--grpc-port", "0"]
        full_env = {**os.environ, **(env or {})}
        full_env.setdefault("PYTHONPATH", str(ROOT / "src"))
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env,
            cwd=ROOT,
        )  # fmt: skip
        self.lines: list[str] = []
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._listening.wait(60):
            self.stop()
            raise RuntimeError("the server did not start:\n" + self.log)
        words = dict(w.split("=", 1) for w in self._address_line.split()[3:])
        self.http = words.get("http", "").split("://")[-1]
        self.scheme = words.get("http", "http://").split("://")[0]
        self.grpc = words.get("grpc", "")
        self.metrics = words.get("metrics", "")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(LISTENING):
                self._address_line = line.strip()
                self._listening.set()

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.http}"

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def wait_ready(self, path: str = "/v2/health/ready", timeout: float = 60, **kw) -> None:
        """Wait for 200 on ``path`` (server readiness by default, or a model's ready route)."""
        deadline = time.monotonic() + timeout
        with self.client(**kw) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("the server exited:\n" + self.log)
                try:
                    if c.get(path).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise TimeoutError(f"{path} not ready after {timeout}s:\n{self.log}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode


@pytest.fixture(scope="session")
def repository(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("repo")
    facts = triton_repository(root)
    return root, facts


@pytest.fixture(scope="session")
def server(repository):
    """The main server: the test repository, model control 'none'."""
    root, _ = repository
    srv = ServerProcess(str(root), "--no-access-log")
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture()
def http(server):
    with server.client() as c:
        yield c
