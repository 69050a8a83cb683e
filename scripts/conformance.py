"""Print the ONNX backend conformance of onnxpy per suite.

python scripts/conformance.py               # counts per suite
python scripts/conformance.py -k Conv -v    # only cases whose id contains 'Conv', with errors
python scripts/conformance.py --write-failures   # rewrite expected_failures.txt
"""

from __future__ import annotations

import argparse
import collections
import sys
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conformance.backend import HERE, SUITES, collect, expected_failures, run_case  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-k", action="append", default=[], help="substring filter on case id")
    ap.add_argument("-v", action="store_true", help="print each failure's error")
    ap.add_argument("--suite", action="append", choices=SUITES)
    ap.add_argument("--write-failures", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    cases = collect(tuple(args.suite) if args.suite else SUITES)
    if args.k:
        cases = [c for c in cases if any(k in c.id for k in args.k)]
    known = expected_failures()
    passed: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    failures: dict[str, str] = {}
    for case in cases:
        total[case.suite] += 1
        try:
            run_case(case)
            passed[case.suite] += 1
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            msg = f"{type(e).__name__}: {e}".replace("\n", " ")[:300]
            failures[case.id] = msg
            if args.v:
                print(f"FAIL {case.id}: {msg}")
                if args.v and "-vv" in sys.argv:
                    traceback.print_exc()
    for suite in SUITES:
        if total[suite]:
            print(f"{suite:18s} {passed[suite]:5d} / {total[suite]:5d}")
    backend = sum(passed[s] for s in SUITES if s != "light")
    backend_total = sum(total[s] for s in SUITES if s != "light")
    print(f"{'backend total':18s} {backend:5d} / {backend_total:5d}")
    newly = [k for k in known if k not in failures and any(c.id == k for c in cases)]
    if newly:
        print(f"{len(newly)} expected failures now pass: {newly[:10]}")
    if args.write_failures:
        lines = ["# ONNX backend cases onnxpy does not pass yet: '<suite>/<case> <reason>'."]
        lines += [f"{k} {v}" for k, v in sorted(failures.items())]
        (HERE / "expected_failures.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
