"""The demo's last two steps: serve the converted model, query the server.

``onnxpy serve MODEL`` runs in a child process on free loopback ports, exactly as a user would
start it; the rows go to it as a KServe v2 JSON request (the Open Inference Protocol that Triton
and KServe clients speak) and the labels come back. The server is stopped with SIGTERM, which
drains it, whatever happened.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass

import numpy as np

__all__ = ["Served", "serve_and_query"]


@dataclass
class Served:
    labels: np.ndarray
    address: str
    start_seconds: float
    query_seconds: float


def _lines(stream, sink: queue.Queue) -> None:
    for line in stream:
        sink.put(line.rstrip("\n"))
    sink.put(None)


def _listening_address(lines: queue.Queue, proc: subprocess.Popen, timeout: float) -> str:
    from onnxpy.serving.server import LISTENING

    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if line.startswith(LISTENING):
            words = dict(w.split("=", 1) for w in line.split() if "=" in w)
            return words["http"]
    raise RuntimeError(
        f"onnxpy serve did not start (exit {proc.poll()}):\n" + "\n".join(seen[-20:])
    )


def _request(url: str, body: dict | None = None, timeout: float = 10.0) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        text = resp.read()
        return resp.status, json.loads(text) if text else {}


def serve_and_query(
    model_path: str,
    model_name: str,
    input_name: str,
    x: np.ndarray,
    output: str,
    timeout: float = 60.0,
) -> Served:
    """Start ``onnxpy serve model_path``, send ``x`` to ``/v2/models/{model_name}/infer``,
    return the values of ``output``; the server is stopped before this returns."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "onnxpy", "serve", model_path,
         "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True).start()
    try:
        address = _listening_address(lines, proc, timeout)
        base = address if "://" in address else f"http://{address}"
        deadline = time.monotonic() + timeout
        while True:  # the models load after the port is bound: wait until ready
            try:
                if _request(f"{base}/v2/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"onnxpy serve at {base} never became ready")
            time.sleep(0.1)
        t1 = time.perf_counter()
        body = {
            "id": "demo",
            "inputs": [
                {
                    "name": input_name,
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "data": x.ravel().tolist(),
                }
            ],
            "outputs": [{"name": output}],
        }
        status, answer = _request(f"{base}/v2/models/{model_name}/infer", body)
        t2 = time.perf_counter()
        if status != 200 or answer.get("id") != "demo":
            raise RuntimeError(f"unexpected answer from the server ({status}): {answer}")
        (out,) = answer["outputs"]
        labels = np.asarray(out["data"]).reshape(out["shape"])
        return Served(labels, base, t1 - t0, t2 - t1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
