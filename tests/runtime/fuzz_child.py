"""Child process of tests/runtime/test_fuzz.py: load and run mutated models, report outcomes.

Reads ``<dir>/*.onnx`` in name order; for each, writes ``start <name>`` before and one JSON
result line after to ``<dir>/results.jsonl`` (flushed), so a crash or a hang is pinned on the
model that caused it. Outcomes: ``ran`` (with whether onnxruntime agreed, when it ran too),
``refused`` (an onnxpy error at creation or run, with its class), ``bare`` (any other exception:
the failure the test looks for).
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import numpy as np


def feeds_for(sess, rng):
    from onnxpy.types import ELEM_TYPE_TO_DTYPE

    feeds = {}
    for arg in sess.get_inputs():
        tp = arg._type_proto
        if tp is None or tp.WhichOneof("value") != "tensor_type":
            return None
        dtype = ELEM_TYPE_TO_DTYPE.get(tp.tensor_type.elem_type)
        if dtype is None:
            return None
        shape = [d if isinstance(d, int) and 0 <= d <= 64 else 2 for d in arg.shape]
        if dtype.kind == "f":
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[arg.name] = rng.integers(0, 3, size=shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[arg.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            return None
    return feeds


def _agree(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc":
        scale = max(1.0, float(np.nanmax(np.abs(b))) if b.size and np.isfinite(b).any() else 1.0)
        return bool(np.allclose(a, b, rtol=1e-4, atol=1e-4 * scale, equal_nan=True))
    return bool(np.array_equal(a, b))


def one(path: Path, rng) -> dict:
    import onnxpy

    data = path.read_bytes()
    try:
        sess = onnxpy.InferenceSession(data)
        feeds = feeds_for(sess, rng)
        if feeds is None:
            return {"outcome": "loaded"}
        outs = sess.run(None, feeds)
    except onnxpy.OnnxpyError as e:
        return {"outcome": "refused", "error": type(e).__name__, "message": str(e)[:300]}
    except Exception as e:  # noqa: BLE001 - the very thing this test hunts
        return {
            "outcome": "bare",
            "error": type(e).__name__,
            "message": str(e)[:300],
            "trace": traceback.format_exc()[-2000:],
        }
    result = {"outcome": "ran"}
    try:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 4
        theirs = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"]).run(None, feeds)
    except Exception:  # noqa: BLE001 - onnxruntime refusing says nothing about onnxpy
        return result
    result["agree"] = _all_agree(outs, theirs)
    if not result["agree"]:
        # onnxruntime departs from the spec in places (e.g. binary tree classifiers report
        # [-s, s]); the spec's reference implementation then has the last word.
        try:
            from onnx.reference import ReferenceEvaluator

            reference = ReferenceEvaluator(data).run(None, feeds)
        except Exception:  # noqa: BLE001 - no second opinion: undecided, reported as such
            result["agree"] = None
            return result
        result["agree"] = _all_agree(outs, reference)
        result["oracle"] = "onnx.reference"
    return result


def _all_agree(outs, theirs) -> bool:
    pairs = [(a, b) for a, b in zip(outs, theirs) if isinstance(b, np.ndarray)]
    return len(outs) == len(theirs) and all(_agree(a, b) for a, b in pairs)


def main(folder: str) -> None:
    out = Path(folder) / "results.jsonl"
    rng = np.random.default_rng(0)
    with open(out, "a") as log:
        for path in sorted(Path(folder).glob("*.onnx")):
            log.write(f"start {path.name}\n")
            log.flush()
            res = one(path, rng)
            res["name"] = path.name
            log.write(json.dumps(res) + "\n")
            log.flush()


if __name__ == "__main__":
    main(sys.argv[1])
