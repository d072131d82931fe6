"""REST routes for comparing experiments and reading studies (``/api/compare``, ``/api/studies``).

Errors use the cockpit API's mapping (``MLSystemError`` -> 400/404 with ``{"detail": …}``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Query

from MLSystem.compare import compare
from MLSystem.gui.context import Cockpit
from MLSystem.tune.report import list_studies, study_summary


def register(app: FastAPI, cockpit: Cockpit) -> None:
    api = APIRouter(prefix="/api")

    @api.get("/compare", tags=["experiments"], summary="Compare experiments: differing params, best/last metrics")
    def compare_experiments(ids: list[str] = Query(..., description="experiment IDs or prefixes (repeat, or comma-separated)"),
                            curves: bool = Query(False, description="include the metric curves")) -> dict[str, Any]:
        return compare(cockpit.paths, ids, with_curves=curves)

    @api.get("/studies", tags=["studies"], summary="Every study: trials by state, best value")
    def studies() -> dict[str, Any]:
        return {"studies": list_studies(cockpit.paths)}

    @api.get("/studies/{name}", tags=["studies"], summary="One study: trials, best so far, parameter importance")
    def study(name: str, importance: bool = True) -> dict[str, Any]:
        return study_summary(cockpit.paths, name, importance=importance)

    app.include_router(api)
