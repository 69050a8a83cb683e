"""Suite-wide rules.

With ``ONNXPY_STRICT_SKIPS=1`` (set by ``.ci/run``) any skip, of a test or of a whole module at
collection, makes the run fail: in CI every component a test needs (onnxruntime, a browser, Ray,
a server) is installed, so a skip there means a check silently did not happen. Locally, without
some optional component, tests still skip and say why.
"""

from __future__ import annotations

import os

import pytest


def _strict() -> bool:
    return os.environ.get("ONNXPY_STRICT_SKIPS") == "1"


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if not _strict():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = [r for r in (reporter.stats.get("skipped", []) if reporter else [])]
    if skipped and session.exitstatus == 0:
        reporter.write_line(
            f"ONNXPY_STRICT_SKIPS=1: {len(skipped)} skipped; CI installs everything the tests "
            "need, so a skip is a failure here:",
            red=True,
        )
        for r in skipped:
            reporter.write_line(f"  {r.nodeid}: {r.longrepr}")
        session.exitstatus = 1


# -- one local Ray instance per test session ----------------------------------------------------
# Ray takes seconds to start and a few hundred MB per process: every Ray test shares these two
# fixtures (the modules that use them carry the xdist group "ray", and addopts uses --dist
# loadgroup, so under -n 2 they all run in one worker, one after the other).


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance: 2 CPUs, no dashboard, logs kept out of the test output."""
    ray = pytest.importorskip("ray", reason="the Ray tests need the ray extra")
    import logging

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def ray_serve(ray_local):
    """Serve on ``ray_local``: HTTP and gRPC proxies on free ports, onnxpy's gRPC service."""
    import socket
    from types import SimpleNamespace

    from ray import serve

    from onnxpy.serving.ray.application import GRPC_SERVICER_FUNCTION

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    serve.start(
        http_options={"host": "127.0.0.1", "port": ports[0]},
        grpc_options={"port": ports[1], "grpc_servicer_functions": [GRPC_SERVICER_FUNCTION]},
    )
    try:
        yield SimpleNamespace(http=f"127.0.0.1:{ports[0]}", grpc=f"127.0.0.1:{ports[1]}")
    finally:
        serve.shutdown()
