"""Read-only views of studies for ``tune --list/--show``, the REST API and the cockpit."""

from __future__ import annotations

import importlib.abc
import math
import sys
import threading
from typing import Any

from MLSystem.paths import ProjectPaths
from MLSystem.tune.driver import ERROR, EXPERIMENT, JOB, PRUNED_AT, REUSED
from MLSystem.tune.store import StudyStore, list_study_names

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def _load(store: StudyStore):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = store.read_spec()
    if not store.journal.is_file():
        return spec, None
    try:
        return spec, optuna.load_study(study_name=spec.name, storage=store.storage())
    except KeyError:  # the journal exists but the study was never created in it
        return spec, None


def _num(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def trial_row(t) -> dict[str, Any]:
    steps = sorted(t.intermediate_values)
    return {"number": t.number, "state": t.state.name.lower(), "value": _num(t.value), "params": t.params,
            "experiment_id": t.user_attrs.get(EXPERIMENT), "job": t.user_attrs.get(JOB),
            "pruned_at_epoch": t.user_attrs.get(PRUNED_AT), "reused": bool(t.user_attrs.get(REUSED)),
            "error": t.user_attrs.get(ERROR), "epochs_reported": len(steps),
            "last_intermediate": _num(t.intermediate_values[steps[-1]]) if steps else None,
            "started": t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else None,
            "completed": t.datetime_complete.isoformat(timespec="seconds") if t.datetime_complete else None}


def study_summary(paths: ProjectPaths, name: str, *, importance: bool = True) -> dict[str, Any]:
    """Spec, counts, best trial, every trial, best-so-far history and parameter importance."""
    spec, study = _load(StudyStore(paths, name))
    trials = study.get_trials(deepcopy=False) if study else []
    rows = [trial_row(t) for t in trials]
    counts = {s.lower(): sum(1 for r in rows if r["state"] == s.lower()) for s in STATES}
    best, history, best_value = None, [], None
    for r in rows:
        if r["state"] == "complete" and r["value"] is not None:
            if best_value is None or (r["value"] > best_value if spec.mode == "max" else r["value"] < best_value):
                best_value, best = r["value"], r
            history.append({"trial": r["number"], "value": r["value"], "best": best_value})
    out = {"name": spec.name, "spec": spec.to_dict(), "direction": spec.direction, "counts": counts,
           "n_trials": len(rows), "best": best, "trials": rows, "best_so_far": history, "importance": {}}
    if importance and counts["complete"] >= 2:
        out["importance"] = param_importance(study)
    return out


def study_importance(paths: ProjectPaths, name: str) -> dict[str, float]:
    """:func:`param_importance` of a stored study ({} with fewer than two complete trials)."""
    _, study = _load(StudyStore(paths, name))
    complete = study.get_trials(deepcopy=False, states=(_complete(),)) if study else []
    return param_importance(study) if len(complete) >= 2 else {}


def _complete():
    import optuna

    return optuna.trial.TrialState.COMPLETE


class _NoSklearnHere(importlib.abc.MetaPathFinder):
    """Makes ``import sklearn…`` fail in one thread only (other threads import it as usual)."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 (importlib's signature)
        if threading.get_ident() == self.thread and (name == "sklearn" or name.startswith("sklearn.")):
            raise ModuleNotFoundError(f"No module named {name!r} (not needed by PED-ANOVA)", name=name)
        return None


_import_lock = threading.Lock()


def importance_module():
    """``optuna.importance``, imported without scikit-learn when that is not loaded yet.

    The package imports scikit-learn at import time for its fANOVA and MDI evaluators (an
    optional dependency, there only because another package pulled it in): 2-4 s here, holding
    the GIL that the cockpit's pages need. PED-ANOVA, the evaluator used here, needs only NumPy
    (optuna + its importance package: ~0.25 s). Optuna treats the missing scikit-learn as not
    installed; only its fANOVA and MDI evaluators then refuse to run in this process."""
    with _import_lock:
        if "optuna.importance" not in sys.modules and "sklearn" not in sys.modules:
            finder = _NoSklearnHere()
            sys.meta_path.insert(0, finder)
            try:
                importlib.import_module("optuna.importance")
            finally:
                sys.meta_path.remove(finder)
        return importlib.import_module("optuna.importance")


def param_importance(study) -> dict[str, float]:
    """Optuna's parameter importance (PED-ANOVA: no extra packages); {} when it cannot tell."""
    import warnings

    importance = importance_module()
    warnings.filterwarnings("ignore", message=".*quantiles select the same set of trials.*")  # few trials
    try:
        evaluator = importance.PedAnovaImportanceEvaluator()
        return {k: float(v) for k, v in importance.get_param_importances(study, evaluator=evaluator).items()}
    except Exception:  # too few distinct trials, a single-valued parameter…: no importance to show
        try:  # (needs scikit-learn: see importance_module)
            return {k: float(v) for k, v in importance.get_param_importances(
                study, evaluator=importance.MeanDecreaseImpurityImportanceEvaluator()).items()}
        except Exception:
            return {}


def list_studies(paths: ProjectPaths) -> list[dict[str, Any]]:
    """One row per study: spec, counts and best value."""
    out = []
    for name in list_study_names(paths):
        s = study_summary(paths, name, importance=False)
        out.append({"name": name, "metric": s["spec"]["metric"], "mode": s["spec"]["mode"],
                    "trials": s["spec"]["trials"], "n_trials": s["n_trials"], "counts": s["counts"],
                    "best_value": s["best"]["value"] if s["best"] else None,
                    "best_experiment": s["best"]["experiment_id"] if s["best"] else None,
                    "created": s["spec"].get("created", "")})
    return out
