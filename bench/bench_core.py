"""Core benchmarks (issue 2). Prints a table; ratios are against baselines measured in the same run.

    .venv/bin/python bench/bench_core.py [--repeats 3]

1. Framework overhead: `execute_train dataset=digits model=cnn max_epochs=3` (a fresh
   experiment each time) vs a plain Lightning script training the same module on the same data
   (bench/plain_lightning.py). Both are whole processes, imports included. Target <= 1.10x.
2. The "already complete" path of execute_train vs `python -c "import torch"`. Target <= 0.5x.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARGS = ["dataset=digits", "model=cnn", "max_epochs=3"]


def timed(cmd: list[str], cwd: Path, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    repeats = ap.parse_args().repeats
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "configs", root / "configs")
        shutil.copytree(REPO / "definitions", root / "definitions")
        env = dict(os.environ, MLSYSTEM_ROOT=str(root), PYTHONPATH=str(root))
        plain, framework, complete, torch_import = [], [], [], []
        for i in range(repeats):
            plain.append(timed([py, str(REPO / "bench" / "plain_lightning.py"), *ARGS, f"seed={i}"], root, env))
            framework.append(timed([py, "-m", "MLSystem.execute_train", *ARGS, f"seed={i}"], root, env))
            complete.append(timed([py, "-m", "MLSystem.execute_train", *ARGS, f"seed={i}"], root, env))
            torch_import.append(timed([py, "-c", "import torch"], root, env))
    rows = [
        ("digits/cnn 3 epochs: execute_train", min(framework), "plain Lightning script", min(plain), 1.10),
        ("'already complete' path", min(complete), 'python -c "import torch"', min(torch_import), 0.50),
    ]
    print(f"{'measurement':38} {'s':>7}  {'baseline':26} {'s':>7} {'ratio':>7} {'target':>7}")
    for name, t, base_name, base, target in rows:
        ratio = t / base
        print(f"{name:38} {t:7.2f}  {base_name:26} {base:7.2f} {ratio:6.2f}x {'<=' + format(target, '.2f'):>7}"
              f" {'ok' if ratio <= target else 'MISSED'}")
    print(f"(best of {repeats} runs each, whole processes; {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
