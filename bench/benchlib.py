"""What every bench script needs: the repository on sys.path, a fresh project, its environment."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def make_project(root: Path) -> Path:
    """A separate MLSystem world (configs + definitions) at ``root``, like the tests' ``make_project``."""
    root.mkdir(parents=True)
    shutil.copytree(REPO / "configs", root / "configs")
    shutil.copytree(REPO / "definitions", root / "definitions", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def env_for(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI run in the project at ``root``."""
    # PYTHONPATH: the processes a bench starts measure this checkout, whatever is installed
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, MLSYSTEM_ROOT=str(root), PYTHONUNBUFFERED="1", PYTHONPATH=path, **extra)
