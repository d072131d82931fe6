"""Projects for the cockpit tests: a trained template (built once per session) copied per test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import FAST, add_echo_model, cli_env, make_project

# One process trains both: a 2-epoch digits/cnn experiment and a 1-epoch `echo` (speech-interface) one.
TRAIN_BOTH = (
    "from MLSystem.execute_train import main\n"
    "import sys\n"
    "a = sys.argv[1:]\n"
    "assert main(['dataset=digits', 'model=cnn', 'max_epochs=2', *a]) == 0\n"
    "assert main(['dataset=digits', 'model=echo', 'max_epochs=1', *a]) == 0\n"
)


def build_trained_template(root: Path) -> Path:
    make_project(root)
    add_echo_model(root)
    proc = subprocess.run([sys.executable, "-c", TRAIN_BOTH, *FAST], cwd=root, env=cli_env(root),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def copy_project(template: Path, target: Path) -> Path:
    shutil.copytree(template, target, ignore=shutil.ignore_patterns("__pycache__", ".lease*"))
    return target


def experiment_ids(root: Path) -> dict[str, str]:
    """model name -> experiment ID in a trained template."""
    import json

    out = {}
    for meta in (root / "output" / "experiments").glob("*/experiment.json"):
        data = json.loads(meta.read_text())
        out[data["model"]] = data["id"]
    return out
