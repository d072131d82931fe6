"""Page ``/compare?ids=A,B,C``: parameters that differ, overlaid metric curves, parallel
coordinates and the best / last table (data: ``MLSystem.compare``; best by ``utils.metric_mode``)."""

from __future__ import annotations

from typing import Any

from nicegui import run, ui

from MLSystem.compare import compare
from MLSystem.errors import MLSystemError
from MLSystem.gui.compare_charts import overlay_options, parallel_options
from MLSystem.gui.context import Cockpit
from MLSystem.gui.layout import frame


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "–" if v is None else str(v)


def default_metric(result: dict[str, Any]) -> str | None:
    names = result["metric_names"]
    for pick in ("val_acc", "val_loss"):
        if pick in names:
            return pick
    return next((n for n in names if n.startswith("val")), names[0] if names else None)


class ComparePanel:
    def __init__(self, result: dict[str, Any]):
        self.result = result
        ids = result["ids"]
        with ui.row().classes("items-center gap-2"):
            ui.label(f"{len(ids)} experiments:")
            for eid in ids:
                ui.link(eid, f"/experiments/{eid}").classes("font-mono")
        ui.label("Parameters").classes("text-lg font-semibold")
        self.only_diff = ui.switch("Only parameters that differ", value=True,
                                   on_change=lambda: self.params.refresh()).mark("cmp-only-diff")
        self.params()
        metrics = result["metric_names"]
        ui.label("Metric curves").classes("text-lg font-semibold")
        with ui.row().classes("items-end gap-3"):
            self.metric = ui.select([*metrics, "loss"], value=default_metric(result) or "loss", label="Metric",
                                    on_change=self.redraw).classes("w-48").mark("cmp-metric")
            self.x = ui.toggle(["epoch", "step"], value="epoch", on_change=self.redraw).mark("cmp-x")
        self.curves = ui.echart(overlay_options(result, self.metric.value, "epoch")).classes("w-full h-80").mark("cmp-curves")
        ui.label("Parallel coordinates").classes("text-lg font-semibold")
        self.parallel = ui.echart(self._parallel()).classes("w-full h-80").mark("cmp-parallel")
        ui.label("Best / last value per metric").classes("text-lg font-semibold")
        self.best_table()

    def _parallel(self) -> dict[str, Any]:
        keys = [k for k in self.result["differing"] if k != "max_epochs"] or ["max_epochs"]
        metric = self.metric.value if self.metric.value != "loss" else default_metric(self.result)
        return parallel_options(self.result, metric, keys)

    def redraw(self) -> None:
        self.curves.options.clear()
        self.curves.options.update(overlay_options(self.result, self.metric.value, self.x.value))
        self.curves.update()
        self.parallel.options.clear()
        self.parallel.options.update(self._parallel())
        self.parallel.update()

    @ui.refreshable_method
    def params(self) -> None:
        r, ids = self.result, self.result["ids"]
        keys = r["differing"] if self.only_diff.value else list(r["params"])
        columns = [{"name": "param", "label": "Parameter", "field": "param", "align": "left"}] + [
            {"name": e, "label": e[:12], "field": e, "align": "right"} for e in ids]
        rows = [{"param": k + (" *" if k in r["differing"] and not self.only_diff.value else ""),
                 **{e: _fmt(r["params"][k].get(e)) for e in ids}} for k in keys]
        ui.table(columns=columns, rows=rows, row_key="param").props("dense flat").classes("w-full").mark("cmp-params")
        if not keys:
            ui.label("no parameter differs")

    def best_table(self) -> None:
        r, ids = self.result, self.result["ids"]
        columns = [{"name": "metric", "label": "Metric", "field": "metric", "align": "left"},
                   {"name": "which", "label": "", "field": "which", "align": "left"}] + [
            {"name": e, "label": e[:12], "field": e, "align": "right"} for e in ids]
        rows = []
        for name in r["metric_names"]:
            modes = {r["metrics"][e][name]["mode"] for e in ids if name in r["metrics"][e]}
            guessed = any(r["metrics"][e].get(name, {}).get("mode_guessed") for e in ids)
            label = f"{name} ({'/'.join(sorted(modes))}{', guessed' if guessed else ''})"
            for which in ("best", "last"):
                rows.append({"key": f"{name}-{which}", "metric": label if which == "best" else "", "which": which,
                             **{e: _fmt(r["metrics"][e].get(name, {}).get(which)) for e in ids}})
        ui.table(columns=columns, rows=rows, row_key="key").props("dense flat").classes("w-full").mark("cmp-best")


def register(cockpit: Cockpit) -> None:
    @ui.page("/compare")
    async def compare_page(ids: str = "") -> None:
        with frame("Compare experiments"):
            box = ui.column().classes("w-full gap-3")
            with box:
                ui.spinner()
            try:
                result = await run.io_bound(compare, cockpit.paths, [ids], with_curves=True)
            except MLSystemError as exc:
                box.clear()
                with box:
                    ui.label(f"cannot compare: {exc}").classes("text-negative").mark("cmp-error")
                    ui.label("Select experiments in the Experiments table and press Compare.")
                return
            box.clear()
            with box:
                ComparePanel(result)
