"""Every ONNX backend test case, through onnxpy. Known failures are strict xfails: a case that
starts passing fails the suite until it is removed from expected_failures.txt."""

from __future__ import annotations

import pytest

from tests.conformance.backend import collect, expected_failures, run_case

_CASES = collect()
_XFAIL = expected_failures()


def _params():
    for case in _CASES:
        marks = []
        if case.id in _XFAIL:
            marks.append(pytest.mark.xfail(reason=_XFAIL[case.id], strict=True))
        yield pytest.param(case, id=case.id, marks=marks)


def test_known_failures_exist():
    """Every listed failure names a real case (a typo would hide nothing but confuse)."""
    ids = {c.id for c in _CASES}
    assert not [k for k in _XFAIL if k not in ids]


@pytest.mark.parametrize("case", list(_params()))
def test_backend_case(case):
    run_case(case)
