#!/usr/bin/env bash
# Set everything up and run the demo: digits experiments queued and drained by the transient
# runner, the same job again (already complete), an extension to more epochs, a plot job, and
# finally the cockpit (Ctrl-C stops it; MLSYSTEM_DEMO_NO_GUI=1 skips it, e.g. in scripts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python

experiment_of() {  # the experiment ID a submit would queue (or has already trained)
  $PY -m MLSystem.submit "$@" --dry-run --force --json \
    | $PY -c 'import json, sys; print(json.load(sys.stdin)["queued"][0]["experiment_id"])'
}

echo "== Queue two experiments and drain the queue"
$PY -m MLSystem.submit dataset=digits model=cnn max_epochs=3 --priority 5
$PY -m MLSystem.submit dataset=digits model=mlp max_epochs=3
$PY -m MLSystem.runner
$PY -m MLSystem.submit --list

echo
echo "== The same config again: nothing to train"
$PY -m MLSystem.execute_train dataset=digits model=cnn max_epochs=3
echo "== Raise max_epochs through the queue: trains epochs 4-5 only"
$PY -m MLSystem.submit dataset=digits model=cnn max_epochs=5
$PY -m MLSystem.runner

CNN=$(experiment_of dataset=digits model=cnn max_epochs=5)
echo
echo "== Plots of ${CNN} at every layer, as a queued job"
$PY -m MLSystem.submit --plot "${CNN:0:6}"
$PY -m MLSystem.runner
$PY -m MLSystem.execute_plot --list "${CNN:0:6}"
find "output/experiments/${CNN}/plots" -name '*.png' | sort

echo
if [ -z "${MLSYSTEM_DEMO_NO_GUI:-}" ]; then
  echo "== Starting the cockpit (queue, live training, experiments, checkpoints, inference). Open the URL below."
  exec $PY -m MLSystem.gui_start --port "${MLSYSTEM_GUI_PORT:-8080}"
fi
