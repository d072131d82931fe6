"""Every path the system uses, derived in one place from the project root.

The root is ``$MLSYSTEM_ROOT`` when set, else the current directory. A copy of the project is
therefore a separate world: its own configs, definitions, experiments and queue.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV = "MLSYSTEM_ROOT"


@dataclass(frozen=True)
class ProjectPaths:
    """Resolved locations of one project."""

    root: Path

    @classmethod
    def discover(cls, root: str | os.PathLike | None = None) -> "ProjectPaths":
        """Root from the argument, else ``$MLSYSTEM_ROOT``, else the current directory."""
        chosen = root or os.environ.get(ROOT_ENV) or os.getcwd()
        return cls(Path(chosen).resolve())

    # -- configuration -------------------------------------------------------------------------
    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def config_yaml(self) -> Path:
        return self.configs / "config.yaml"

    @property
    def registry_json(self) -> Path:
        return self.configs / "registry.json"

    # -- experiments ---------------------------------------------------------------------------
    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def experiments(self) -> Path:
        return self.output / "experiments"

    def experiment(self, experiment_id: str) -> "ExperimentPaths":
        return ExperimentPaths(self.experiments / experiment_id)

    # -- queue ---------------------------------------------------------------------------------
    @property
    def queue(self) -> Path:
        return self.root / "queue"

    def ensure_importable(self) -> None:
        """Put the root first on ``sys.path`` so ``definitions.*`` resolves to this project.

        If another project's ``definitions`` package was imported in this process (tests,
        notebooks switching projects), forget it so this project's files are imported.
        """
        root = str(self.root)
        if not sys.path or sys.path[0] != root:
            if root in sys.path:
                sys.path.remove(root)
            sys.path.insert(0, root)
        loaded = sys.modules.get("definitions")
        where = [str(p) for p in getattr(loaded, "__path__", [])] if loaded else []
        if loaded and not any(Path(p).resolve() == self.root / "definitions" for p in where):
            for name in [m for m in sys.modules if m == "definitions" or m.startswith("definitions.")]:
                del sys.modules[name]


@dataclass(frozen=True)
class ExperimentPaths:
    """Files inside ``output/experiments/{id}/``."""

    dir: Path

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def metadata(self) -> Path:
        return self.dir / "experiment.json"

    @property
    def state(self) -> Path:
        """Small training-state file: lets 'already complete' be decided without torch."""
        return self.dir / "state.json"

    @property
    def resolved_config(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.dir / "metrics.jsonl"

    @property
    def progress(self) -> Path:
        return self.dir / "progress.json"

    @property
    def log(self) -> Path:
        return self.dir / "train.log"

    @property
    def lease(self) -> Path:
        return self.dir / ".lease"

    @property
    def lease_owner(self) -> Path:
        return self.dir / ".lease.owner"

    @property
    def stop_flag(self) -> Path:
        return self.dir / "STOP"

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def last_ckpt(self) -> Path:
        return self.checkpoints / "last.ckpt"

    def epoch_ckpt(self, epochs_done: int) -> Path:
        return self.checkpoints / f"epoch-{epochs_done:04d}.ckpt"

    @property
    def plots(self) -> Path:
        return self.dir / "plots"
