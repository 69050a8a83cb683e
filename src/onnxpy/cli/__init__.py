"""The ``onnxpy`` command line: one module per subcommand, each calling one public function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from onnxpy import __version__
    from onnxpy.cli import demo, run

    parser = argparse.ArgumentParser(prog="onnxpy", description="An ONNX runtime in Python.")
    parser.add_argument("--version", action="version", version=f"onnxpy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (demo, run):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``onnxpy`` console script."""
    args = _parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
