#!/usr/bin/env bash
# Re-lock constraints.txt: install every extra at the newest versions the ranges in pyproject.toml
# allow, in a fresh virtualenv, run the tests there, and write what was installed. Run it when a
# range changes or to take new releases on purpose; commit the result only when the tests pass.
# Usage (from the project root): bash scripts/lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
. "$venv/bin/activate"
pip install -q -U -e ".[dev]"
python -m pytest -q -n 2 -p no:cacheprovider
{
  echo "# Versions the README's commands and CI install (pip install -c constraints.txt ...)."
  echo "# Written by scripts/lock.sh from a fresh virtualenv whose tests passed; do not edit by hand."
  pip freeze --exclude-editable | sed -E 's/^(torch==[0-9.]+)\+cpu$/\1/'
} > constraints.txt
echo "constraints.txt written ($(grep -vc '^#' constraints.txt) packages)"
