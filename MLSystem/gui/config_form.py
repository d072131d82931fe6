"""The config form: selection, one input per merged field, free overrides, and a live preview.

Fields come from ``merge_config`` for the chosen dataset/model/adapter: type-appropriate
inputs with the default, help text and the layer the value comes from. Every change is
previewed with ``submit.plan`` (experiment ID and new / resume / extend / complete, or why it
is new); ``ConfigError`` problems are shown at the field they name.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any, Callable

from nicegui import run, ui

from MLSystem.config_merge import MergedConfig, load_base_config, merge_config
from MLSystem.errors import ConfigError, MLSystemError
from MLSystem.gui.context import Cockpit
from MLSystem.gui.layout import action_color
from MLSystem.records import SELECTION_KEYS, Action
from MLSystem.submit import plan

PREVIEW_DEBOUNCE_S = 0.3


@dataclass
class Preview:
    plans: list[Any]
    why_new: str
    problems: list[str]


def _text(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def split_overrides(text: str) -> list[str]:
    """``lr=0.1 'name=a b'`` -> ['lr=0.1', 'name=a b'] (shell-like quoting)."""
    try:
        return shlex.split(text or "")
    except ValueError as exc:
        raise ConfigError(f"overrides: {exc}") from None


def compute_preview(cockpit: Cockpit, overrides: list[str], sweeps: bool) -> Preview:
    """Blocking: what adding these overrides would do, and for one new experiment why it is new
    (``plan`` found the nearest existing one already); call in a worker thread."""
    try:
        plans = plan(overrides, paths=cockpit.paths)
    except ConfigError as exc:
        return Preview([], "", exc.problems)
    except MLSystemError as exc:
        return Preview([], "", [str(exc)])
    if len(plans) > 1 and not sweeps:
        return Preview([], "", ["sweeps are not allowed here: one job stays one job"])
    near = plans[0].nearest if len(plans) == 1 and plans[0].action == Action.NEW else None
    return Preview(plans, near["text"] if near else "", [])


class ConfigForm:
    """Selection + generated field inputs + extra overrides + live preview, for add and edit."""

    def __init__(self, cockpit: Cockpit, *, initial: list[str] | None = None, sweeps: bool = True,
                 on_preview: Callable[[Preview], None] | None = None):
        self.cockpit = cockpit
        self.sweeps = sweeps
        self.on_preview = on_preview
        self.registry = cockpit.registry()
        self.initial = self._parse_initial(initial or [])
        self.merged: MergedConfig | None = None
        self.inputs: dict[str, ui.element] = {}
        self.errors: dict[str, ui.label] = {}
        self.preview: Preview | None = None
        self._dirty = True
        self._busy = False
        self._build()

    @staticmethod
    def _parse_initial(args: list[str]) -> dict[str, str]:
        return dict(a.split("=", 1) for a in args if "=" in a)

    # -- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        base = self._base_selection()
        datasets = sorted(self.registry.datasets)
        models = sorted(self.registry.models)
        with ui.row().classes("w-full items-end gap-4"):
            self.dataset = ui.select(datasets, label="Dataset", value=base.get("dataset"),
                                     on_change=self._selection_changed).classes("w-48").mark("dataset")
            self.model = ui.select(models, label="Model", value=base.get("model"),
                                   on_change=self._selection_changed).classes("w-48").mark("model")
            self.adapter = ui.select(self._adapters(base.get("model")), label="Adapter", value=base.get("adapter"),
                                     on_change=self.mark_dirty).classes("w-48").mark("adapter")
        self.selection_error = ui.label().classes("text-negative")
        self.fields_box = ui.column().classes("w-full gap-1")
        extra = " ".join(f"{k}={v}" for k, v in self.initial.items() if k == "init_from")
        self.extra = ui.input("More overrides" + (" (sweeps: lr=0.1,0.01)" if self.sweeps else ""), value=extra,
                              on_change=self.mark_dirty).classes("w-full").mark("overrides")
        self.extra_error = ui.label().classes("text-negative whitespace-pre-wrap")
        with ui.card().classes("w-full bg-slate-50"):
            ui.label("Preview").classes("font-semibold")
            self.preview_box = ui.column().classes("gap-1").mark("preview")
        self._render_fields()
        ui.timer(PREVIEW_DEBOUNCE_S, self._maybe_preview)

    def _base_selection(self) -> dict[str, str | None]:
        base = {k: v for k, v in load_base_config(self.cockpit.paths).items() if k in ("dataset", "model", "adapter")}
        base.update({k: v for k, v in self.initial.items() if k in ("dataset", "model", "adapter")})
        if base.get("model") in self.registry.models and not base.get("adapter"):
            names = self._adapters(base["model"])
            base["adapter"] = base.get("dataset") if base.get("dataset") in names else (names[0] if names else None)
        return base

    def _adapters(self, model: str | None) -> list[str]:
        return sorted(self.registry.adapters.get(model or "", {}))

    def _selection_changed(self) -> None:
        names = self._adapters(self.model.value)
        self.adapter.set_options(names, value=self.dataset.value if self.dataset.value in names else
                                 (names[0] if names else None))
        self._render_fields()
        self.mark_dirty()

    def _render_fields(self) -> None:
        """One input per merged field of the current selection."""
        self.fields_box.clear()
        self.inputs, self.errors = {}, {}
        self.selection_error.text = ""
        try:
            sel = [f"{k}={v}" for k, v in (("dataset", self.dataset.value), ("model", self.model.value),
                                            ("adapter", self.adapter.value)) if v]
            self.merged = merge_config(sel, paths=self.cockpit.paths)
        except MLSystemError as exc:
            self.merged = None
            self.selection_error.text = str(exc)
            return
        with self.fields_box, ui.grid(columns=3).classes("w-full gap-x-4 gap-y-1"):
            for name, info in self.merged.fields.items():
                with ui.column().classes("gap-0"):
                    self.inputs[name] = self._field_input(name, info)
                    source = self.merged.sources[name]
                    note = f"from {source}" + ("" if info.identity else " · runtime, not part of the ID")
                    ui.label(f"{info.help} ({note})" if info.help else note).classes("text-xs text-gray-500")
                    self.errors[name] = ui.label().classes("text-xs text-negative").mark(f"error-{name}")

    def _field_input(self, name: str, info: Any) -> ui.element:
        assert self.merged is not None
        value = self.initial.get(name, _text(self.merged.params[name]))
        if info.choices:
            options = [_text(c) for c in info.choices]
            return ui.select(options, label=name, value=value if value in options else options[0],
                             on_change=self.mark_dirty).classes("w-full").mark(f"field-{name}")
        if info.type is bool:
            return ui.switch(name, value=value.lower() == "true", on_change=self.mark_dirty).mark(f"field-{name}")
        return ui.input(name, value=value, on_change=self.mark_dirty).classes("w-full").mark(f"field-{name}")

    # -- values ----------------------------------------------------------------------------------
    def field_value(self, name: str) -> str:
        element = self.inputs[name]
        if isinstance(element, ui.switch):
            return "true" if element.value else "false"
        return str(element.value if element.value is not None else "").strip()

    def overrides(self) -> list[str]:
        """Selection, fields whose value differs from the merged default, then the free overrides."""
        out = [f"{k}={w.value}" for k, w in (("dataset", self.dataset), ("model", self.model),
                                             ("adapter", self.adapter)) if w.value]
        if self.merged is not None:
            for name in self.inputs:
                text = self.field_value(name)
                if text != _text(self.merged.params[name]) or name in self.initial:
                    out.append(f"{name}={text}")
        extra = split_overrides(self.extra.value)
        keys = {a.split("=", 1)[0] for a in extra}
        return [a for a in out if a.split("=", 1)[0] not in keys] + extra

    # -- preview ---------------------------------------------------------------------------------
    def mark_dirty(self) -> None:
        self._dirty = True

    async def refresh_preview(self) -> Preview:
        """Recompute now (also used right before adding, so the button never acts on a stale preview)."""
        self._dirty = False
        try:
            overrides = self.overrides()
        except ConfigError as exc:
            preview = Preview([], "", exc.problems)
        else:
            preview = await run.io_bound(compute_preview, self.cockpit, overrides, self.sweeps)
        if preview is None:  # the app is shutting down
            return Preview([], "", ["the cockpit is shutting down"])
        self._show(preview)
        return preview

    async def _maybe_preview(self) -> None:
        if not self._dirty or self._busy:
            return
        self._busy = True
        try:
            await self.refresh_preview()
        finally:
            self._busy = False

    def _show(self, preview: Preview) -> None:
        self.preview = preview
        for label in self.errors.values():
            label.text = ""
        general = []
        for problem in preview.problems:
            key = problem.split(":", 1)[0].strip()
            if key in self.errors:
                self.errors[key].text = problem
            elif key in SELECTION_KEYS and key != "init_from":
                self.selection_error.text = problem
            else:
                general.append(problem)
        self.extra_error.text = "\n".join(general)
        self.preview_box.clear()
        with self.preview_box:
            if preview.problems:
                ui.label("Not valid: " + "; ".join(preview.problems)).classes("text-negative")
            for p in preview.plans[:20]:
                with ui.row().classes("items-center gap-2"):
                    ui.badge(p.action, color=action_color(p.action))
                    ui.label(f"experiment {p.experiment_id}").classes("font-mono")
                    ui.label(p.message)
            if len(preview.plans) > 20:
                ui.label(f"… {len(preview.plans) - 20} more combinations")
            if len(preview.plans) > 1:
                ui.label(f"{len(preview.plans)} jobs (sweep)").classes("font-semibold")
            if preview.why_new:
                ui.label(f"new because the {preview.why_new}").classes("text-sm text-gray-600")
        if self.on_preview:
            self.on_preview(preview)
