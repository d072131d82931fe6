#!/usr/bin/env bash
# Create .venv and install MLSystem with its test extra. Idempotent: re-installs only when
# pyproject.toml changed. Needs only Python >= 3.10 with venv (3.11 recommended).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.mlsystem-installed
# The install is editable: it points at this checkout, so the stamp names the folder as well as
# the dependencies (a .venv shared with another copy of the project must be re-pointed here).
want=$( (pwd; cat pyproject.toml) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing MLSystem and dependencies (torch 2.11 from PyPI: a few minutes the first time)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet --progress-bar off -e '.[test]'
  echo "$want" > "$stamp"
fi
