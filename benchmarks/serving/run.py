"""Load test: ``onnxpy serve`` (without and with dynamic batching) against a FastAPI + onnxruntime
baseline written the tutorials' way, with wrk, in the same run.

For each model (the zoo's 784-512-512-10 MLP and ResNet-50, batch 1 per request) it starts each
server in turn, checks that it answers the request body correctly (against onnxruntime's own
output), then runs ``wrk --latency`` at each concurrency for ``--duration`` seconds with the
same JSON v2 body, and records requests/s, p50 and p99 latency and errors (non-2xx answers and
socket errors). ``--rss-minutes`` adds a soak run of the batched onnxpy server at c=32 that
samples the server's resident memory every 10 s. Results go to ``--out`` (markdown and JSON).

Usage (wrk is a Debian package: ``apt-get install wrk``; the baseline needs the ``bench`` extra):

    python -m benchmarks.serving.run                      # 30 s per point, MLP and ResNet-50
    python -m benchmarks.serving.run --duration 5 --models mlp        # a quick look
    python -m benchmarks.serving.run --models mlp --only-rss --rss-minutes 10

Both servers run with their defaults (onnxpy: one BLAS thread per session, one instance; the
baseline: onnxruntime's own thread pool, one uvicorn worker, as the tutorials run it) and
access logs off. This machine is shared: numbers move by tens of percent between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
LISTENING = "onnxpy serve listening:"

BATCHING = {
    # model: (max_batch_size, max_queue_delay_us)
    "mlp": (64, 500),
    "resnet50": (8, 2000),
}


@dataclass
class Point:
    model: str
    server: str
    concurrency: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process: onnxpy (reads its listening line) or the uvicorn baseline."""

    def __init__(self, cmd: list[str], env: dict | None = None, port: int | None = None) -> None:
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.port = port
        found = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:
                self.lines.append(line)
                m = re.search(r"http=http://[\d.]+:(\d+)", line)
                if line.startswith(LISTENING) and m:
                    self.port = int(m.group(1))
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if port is None and not found.wait(120):
            raise RuntimeError("server did not start:\n" + "".join(self.lines))

    def url(self, model: str) -> str:
        return f"http://127.0.0.1:{self.port}/v2/models/{model}/infer"

    def wait_answering(self, model: str, body: bytes, timeout: float = 180) -> dict:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited:\n" + "".join(self.lines))
            try:
                req = urllib.request.Request(self.url(model), data=body, method="POST")
                req.add_header("Content-Type", "application/json")
                with urllib.request.urlopen(req, timeout=60) as res:
                    return json.loads(res.read())
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("".join(self.lines))

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self, timeout: float = 60) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _body(model: str) -> tuple[bytes, np.ndarray]:
    from benchmarks import zoo

    feeds = zoo.inputs_for(model, batch=1, seed=7)
    ((name, x),) = feeds.items()
    doc = {"inputs": [{"name": name, "datatype": "FP32", "shape": list(x.shape),
                       "data": x.ravel().tolist()}]}  # fmt: skip
    return json.dumps(doc).encode(), x


def _repositories(model: str, folder: Path) -> dict[str, Path]:
    from benchmarks import zoo

    path = zoo.build(model)
    repos = {}
    for kind in ("unbatched", "batched"):
        target = folder / kind / model / "1"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / "model.onnx")
        repos[kind] = folder / kind
    size, delay = BATCHING[model]
    (folder / "batched" / model / "config.pbtxt").write_text(
        f"max_batch_size: {size}\ndynamic_batching {{ max_queue_delay_microseconds: {delay} }}\n"
    )
    return repos


def _start(kind: str, model: str, repos: dict[str, Path]) -> Server:
    if kind == "baseline":
        port = _free_port()
        cmd = [sys.executable, "-m", "uvicorn", "benchmarks.serving.baseline_app:app",
               "--port", str(port), "--no-access-log", "--log-level", "warning"]  # fmt: skip
        return Server(cmd, env={"ONNX_MODEL": str(repos["unbatched"] / model / "1" / "model.onnx")},
                      port=port)  # fmt: skip
    cmd = [sys.executable, "-m", "onnxpy", "serve", str(repos[kind]), "--http-port", "0",
           "--grpc-port", "-1", "--no-access-log"]  # fmt: skip
    return Server(cmd)


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def wrk(url: str, body_file: Path, concurrency: int, seconds: float) -> dict:
    lua = body_file.with_suffix(".lua")
    lua.write_text(
        'wrk.method = "POST"\n'
        f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "--timeout", "30s",
           "--latency", "-s", str(lua), url]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return {"requests_per_s": rps, "p50_ms": p50, "p99_ms": p99, "requests": total,
            "errors": errors}  # fmt: skip


def _check(answer: dict, expected: np.ndarray, what: str) -> None:
    got = np.array(answer["outputs"][0]["data"], dtype=np.float32).reshape(expected.shape)
    if not np.allclose(got, expected, rtol=1e-3, atol=1e-3):
        raise AssertionError(f"{what} answers differently from onnxruntime")


def run_model(model: str, args, folder: Path, points: list[Point]) -> None:
    import onnxruntime as ort

    repos = _repositories(model, folder)
    body, x = _body(model)
    body_file = folder / f"{model}.json"
    body_file.write_bytes(body)
    oracle = ort.InferenceSession(str(repos["unbatched"] / model / "1" / "model.onnx"))
    expected = oracle.run(None, {oracle.get_inputs()[0].name: x})[0]
    for kind in ("baseline", "unbatched", "batched"):
        server = _start(kind, model, repos)
        try:
            _check(server.wait_answering(model, body), expected, f"{kind} {model}")
            wrk(server.url(model), body_file, 8, min(3, args.duration))  # warm-up
            for c in args.concurrency:
                r = wrk(server.url(model), body_file, c, args.duration)
                point = Point(model, kind, c, args.duration, **r)
                points.append(point)
                print(json.dumps(asdict(point)), flush=True)
        finally:
            server.stop()


def soak(model: str, minutes: float, folder: Path) -> dict:
    """The batched onnxpy server at c=32 for ``minutes``; RSS sampled every 10 s."""
    repos = _repositories(model, folder)
    body, _ = _body(model)
    body_file = folder / f"{model}-soak.json"
    body_file.write_bytes(body)
    server = _start("batched", model, repos)
    samples: list[tuple[float, float]] = []
    try:
        server.wait_answering(model, body)
        result: dict = {}
        t = threading.Thread(
            target=lambda: result.update(wrk(server.url(model), body_file, 32, minutes * 60))
        )
        start = time.monotonic()
        t.start()
        while t.is_alive():
            samples.append((round(time.monotonic() - start, 1), round(server.rss_mb(), 1)))
            t.join(10)
    finally:
        server.stop()
    rss = [m for _, m in samples]
    settled = [m for s, m in samples if s >= 30] or rss  # after the first 30 s of warm-up
    return {
        "model": model, "minutes": minutes, **result, "rss_samples_mb": samples,
        "rss_first_mb": settled[0], "rss_last_mb": settled[-1], "rss_max_mb": max(settled),
        "rss_growth": (max(settled) - settled[0]) / settled[0],
    }  # fmt: skip


def render(points: list[Point], soaked: dict | None) -> str:
    lines = [
        "| model | server | c | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in points:
        rps = f"{p.requests_per_s:,.0f}" if p.requests_per_s >= 100 else f"{p.requests_per_s:.2f}"
        lines.append(
            f"| {p.model} | {p.server} | {p.concurrency} | {rps} | "
            f"{p.p50_ms:,.1f} | {p.p99_ms:,.1f} | {p.errors} |"
        )
    by = {(p.model, p.server, p.concurrency): p for p in points}
    ratios = []
    for (model, server, c), p in sorted(by.items()):
        base = by.get((model, "baseline", c))
        unb = by.get((model, "unbatched", c))
        if server == "unbatched" and base:
            ratios.append(f"- {model} c={c}: onnxpy unbatched / baseline = "
                          f"{p.requests_per_s / base.requests_per_s:.2f}x")  # fmt: skip
        if server == "batched" and unb:
            ratios.append(f"- {model} c={c}: batched / unbatched = "
                          f"{p.requests_per_s / unb.requests_per_s:.2f}x req/s, p99 "
                          f"{p.p99_ms:.1f} vs {unb.p99_ms:.1f} ms")  # fmt: skip
    text = "\n".join(lines) + "\n\n" + "\n".join(ratios) + "\n"
    if soaked:
        text += (
            f"\nSoak: {soaked['model']} batched, c=32, {soaked['minutes']} min: "
            f"{soaked['requests_per_s']:,.0f} req/s, {soaked['errors']} errors, RSS "
            f"{soaked['rss_first_mb']:.0f} MB after 30 s -> {soaked['rss_last_mb']:.0f} MB at the "
            f"end (max {soaked['rss_max_mb']:.0f} MB, growth {soaked['rss_growth'] * 100:.1f} %)\n"
        )
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mlp,resnet50")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per point")
    ap.add_argument("--rss-minutes", type=float, default=0.0, help="soak run length (0: none)")
    ap.add_argument("--only-rss", action="store_true")
    ap.add_argument("--out", default=None, help="folder for results.md / results.json")
    ap.add_argument("--from-json", default=None, help="only render a results.json again")
    args = ap.parse_args(argv)
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        text = render([Point(**p) for p in data["points"]], data["soak"])
        Path(args.from_json).with_suffix(".md").write_text(text)
        print(text)
        return 0
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    points: list[Point] = []
    soaked = None
    with tempfile.TemporaryDirectory(prefix="onnxpy-serving-bench-") as tmp:
        folder = Path(tmp)
        if not args.only_rss:
            for model in args.models.split(","):
                run_model(model, args, folder, points)
        if args.rss_minutes:
            soaked = soak(args.models.split(",")[0], args.rss_minutes, folder)
    text = render(points, soaked)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.md").write_text(text)
        data = {
            "points": [asdict(p) for p in points],
            "soak": soaked,
            "machine": f"{os.cpu_count()} cores, shared",
            "date": time.strftime("%Y-%m-%d"),
        }
        (out / "results.json").write_text(json.dumps(data, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
