"""Optuna studies through the queue (``python -m MLSystem.tune``): search space, study files,
ask/tell driver, the runner's hook and read-only reports."""
