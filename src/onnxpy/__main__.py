"""``python -m onnxpy`` runs the command line."""

from onnxpy.cli import main

raise SystemExit(main())
