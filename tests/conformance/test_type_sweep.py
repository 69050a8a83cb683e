"""Every (operator, element type) pair an operator's schema allows runs in onnxpy.

The variants come from the single-node backend cases, retyped to each NumPy-native element type
their type constraints allow (see ``type_sweep.py``). Each variant's output dtype and shape are
checked, and its values compared with onnxruntime's where onnxruntime has a kernel (and passes
the original case), else with onnxpy's own float64 variant (float targets).
"""

from __future__ import annotations

import pytest

from tests.conformance.type_sweep import all_variants, check_variant, pairs

# (op, element type) -> why onnxpy cannot run it. Strict xfails: a pair that starts passing
# fails the suite until it is removed here.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}

_PAIRS = pairs(all_variants())


def _params():
    for key in _PAIRS:
        marks = []
        if key in KNOWN_EXCEPTIONS:
            marks.append(pytest.mark.xfail(reason=KNOWN_EXCEPTIONS[key], strict=True))
        yield pytest.param(key, id=f"{key[0]}-{key[1]}", marks=marks)


def test_known_exceptions_exist():
    """Every listed exception names a swept pair (a typo would hide nothing but confuse)."""
    assert not [k for k in KNOWN_EXCEPTIONS if k not in _PAIRS]


def test_sweep_reaches_types_onnxruntime_lacks():
    """The sweep is not silently empty: it holds pairs onnxruntime has no CPU kernel for."""
    assert {("Conv", "double"), ("Erf", "double"), ("Gemm", "int32")} <= _PAIRS.keys()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("key", list(_params()))
def test_type_pair(key):
    failures = []
    for v in _PAIRS[key]:
        try:
            check_variant(v)
        except Exception as e:  # noqa: BLE001 - every variant of the pair is reported
            failures.append(f"{v.id}: {type(e).__name__}: {e}")
    assert not failures, "\n\n".join(failures)
