"""``loggers=tensorboard,csv,mlflow``: Lightning's own loggers beside MLSystem's metrics log.

They write inside the experiment folder, one fixed place per logger, so a resumed or extended
run continues the same logger run (the global step continues too):

* ``logs/tensorboard/`` — ``TensorBoardLogger`` event files (one file per run, same folder):
  ``tensorboard --logdir output/experiments``.
* ``logs/csv/metrics.csv`` — ``CSVLogger``; Lightning's writer would start the file over on
  every run, so the rows of earlier runs are kept (rows past the resumed step are dropped).
* ``logs/mlflow.db`` — ``MLFlowLogger`` on a local SQLite file (MLflow 3 refuses its plain-folder
  store); the run id is kept in ``logs/mlflow_run_id`` and reused:
  ``mlflow ui --backend-store-uri sqlite:///output/experiments/ID/logs/mlflow.db``.

Not part of the experiment ID. The packages come from the ``loggers`` extra
(``pip install -e '.[loggers]'``); a missing one is a configuration error before anything runs.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

from MLSystem.errors import ConfigError
from MLSystem.paths import ExperimentPaths

LOGGERS = ("tensorboard", "csv", "mlflow")
# Which importable module each logger needs (tensorboardX also serves Lightning's TensorBoardLogger).
_NEEDS = {"tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"), "mlflow": (("mlflow",), "mlflow-skinny")}


def parse(spec: str | None) -> list[str]:
    """``"tensorboard, csv"`` -> ["tensorboard", "csv"]; unknown names raise ValueError naming them."""
    names = [n.strip().lower() for n in (spec or "").split(",") if n.strip()]
    bad = [n for n in names if n not in LOGGERS]
    if bad:
        raise ValueError(f"loggers: {', '.join(map(repr, bad))} not one of {', '.join(LOGGERS)} (comma-separated)")
    return list(dict.fromkeys(names))


def check_available(spec: str | None) -> None:
    """Raise :class:`ConfigError` for a logger whose package is not installed (cheap: no imports)."""
    missing = []
    for name in parse(spec):
        modules, package = _NEEDS.get(name, ((), ""))
        if modules and not any(importlib.util.find_spec(m) for m in modules):
            missing.append(f"loggers={name} needs the {package} package: pip install -e '.[loggers]' "
                           f"(or pip install {package})")
    if missing:
        raise ConfigError(missing)


def logs_dir(exp: ExperimentPaths) -> Path:
    return exp.dir / "logs"


def build(spec: str | None, exp: ExperimentPaths, *, resume_step: int | None = None) -> list[Any]:
    """The Lightning loggers named by ``spec`` for experiment ``exp`` (resume_step: the global step
    the run continues from, for the CSV file)."""
    names = parse(spec)
    if not names:
        return []
    check_available(spec)
    out: list[Any] = []
    root = logs_dir(exp)
    for name in names:
        if name == "tensorboard":
            from pytorch_lightning.loggers import TensorBoardLogger

            out.append(TensorBoardLogger(save_dir=str(root), name="", version="tensorboard", default_hp_metric=False))
        elif name == "csv":
            out.append(_csv_logger(root, resume_step))
        elif name == "mlflow":
            out.append(_mlflow_logger(root, exp.id))
    return out


def _csv_logger(root: Path, resume_step: int | None):
    import warnings

    from pytorch_lightning.loggers import CSVLogger

    # Its "previous log files will be deleted" warning: the subclass below keeps them.
    warnings.filterwarnings("ignore", message=".*Experiment logs directory .* exists and is not empty.*")

    class ContinuingCSVLogger(CSVLogger):
        """``CSVLogger`` that keeps the earlier runs' rows of the same experiment."""

        @property
        def experiment(self):
            if self._experiment is not None:
                return self._experiment
            path = Path(self.log_dir) / "metrics.csv"
            kept = _read_csv(path, resume_step)
            writer = super().experiment  # Lightning's writer removes an existing metrics.csv here
            if kept is not None:
                header, rows = kept
                with open(path, "w", newline="") as fh:
                    w = csv.DictWriter(fh, fieldnames=header)
                    w.writeheader()
                    w.writerows(rows)
                writer.metrics_keys = list(header)
            return writer

    return ContinuingCSVLogger(save_dir=str(root), name="", version="csv")


def _read_csv(path: Path, resume_step: int | None) -> tuple[list[str], list[dict]] | None:
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    if resume_step is not None:  # rows a killed run wrote past its last checkpoint are replayed
        rows = [r for r in rows if not r.get("step") or float(r["step"]) <= resume_step]
    return header, rows


def _mlflow_logger(root: Path, experiment_id: str):
    from pytorch_lightning.loggers import MLFlowLogger

    id_file = root / "mlflow_run_id"
    run_id = id_file.read_text().strip() if id_file.is_file() else None
    root.mkdir(parents=True, exist_ok=True)
    class ContinuingMLFlowLogger(MLFlowLogger):
        """MLflow params are write-once: a continued run logs only the ones it does not have yet
        (``max_epochs`` raised by an extension keeps its first value there; metrics continue)."""

        def log_hyperparams(self, params: Any) -> None:
            if run_id is None:
                return super().log_hyperparams(params)
            from lightning_fabric.utilities.logger import _convert_params, _flatten_dict

            have = self.experiment.get_run(self.run_id).data.params
            flat = _flatten_dict(_convert_params(params))
            new = {k: v for k, v in flat.items() if k not in have}
            if new:
                super().log_hyperparams(new)

    # A local SQLite file: MLflow 3 keeps its plain-folder store in maintenance mode and refuses it.
    logger = ContinuingMLFlowLogger(experiment_name="mlsystem", run_name=experiment_id,
                          tracking_uri=f"sqlite:///{(root / 'mlflow.db').resolve()}",
                          artifact_location=(root / "mlflow-artifacts").resolve().as_uri(), run_id=run_id)
    if run_id is None:
        id_file.write_text(logger.run_id + "\n")  # ``run_id`` starts the run
    return logger
