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
