#!/usr/bin/env bash
# Set everything up and run the demo: a digits/cnn experiment queued and drained by the runner,
# then the same job again (already complete) and an extension to more epochs; it ends by starting the
# cockpit (Ctrl-C stops it; MLSYSTEM_DEMO_NO_GUI=1 skips it, e.g. in scripts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
if [ -f MLSystem/submit.py ] && [ -f MLSystem/runner.py ]; then
  $PY -m MLSystem.submit dataset=digits model=cnn max_epochs=3
  $PY -m MLSystem.submit dataset=digits model=mlp max_epochs=3
  $PY -m MLSystem.runner
  $PY -m MLSystem.submit --list
else
  $PY -m MLSystem.execute_train dataset=digits model=cnn max_epochs=3
  $PY -m MLSystem.execute_train dataset=digits model=mlp max_epochs=3
fi
echo
echo "Same config again (nothing to train):"
$PY -m MLSystem.execute_train dataset=digits model=cnn max_epochs=3
echo "Raise max_epochs (trains epochs 4-5 only):"
$PY -m MLSystem.execute_train dataset=digits model=cnn max_epochs=5
echo
echo "Experiments are in output/experiments/:"
ls output/experiments
echo
if [ -z "${MLSYSTEM_DEMO_NO_GUI:-}" ]; then
  echo "Starting the cockpit (the queue jobs above already ran through the runner). Open the URL below."
  exec $PY -m MLSystem.gui_start --port "${MLSYSTEM_GUI_PORT:-8080}"
fi
