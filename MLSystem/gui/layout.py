"""The frame every page shares: header with navigation, and small display helpers."""

from __future__ import annotations

import contextlib
from typing import Iterator

from nicegui import ui

from MLSystem.records import Action

NAV = (("Add job", "/", "add_circle"), ("Queue", "/queue", "list"), ("Live", "/live", "monitor_heart"),
       ("Experiments", "/experiments", "science"), ("Studies", "/studies", "insights"),
       ("Checkpoints", "/checkpoints", "save"),
       ("Inference", "/inference", "mic"), ("API", "/docs", "api"))


@contextlib.contextmanager
def frame(title: str) -> Iterator[None]:
    """Header with the navigation, then the page body in a padded column."""
    ui.page_title(f"{title} · MLSystem")
    with ui.header().classes("items-center gap-1 py-1 bg-slate-800"):
        ui.label("MLSystem").classes("text-lg font-bold mr-4")
        for label, href, icon in NAV:
            ui.button(label, icon=icon, on_click=lambda h=href: ui.navigate.to(h)).props("flat dense no-caps color=white")
    with ui.column().classes("w-full p-4 gap-3"):
        ui.label(title).classes("text-2xl font-semibold")
        yield


def text_block(text: str) -> ui.label:
    """Preformatted text shown exactly as it is (logs, errors, config files).

    Not ``ui.code``: that renders Markdown, and a line of three backticks in the text closes its
    fence, so whatever follows (``<img src=…>``, links) would be rendered as Markdown/HTML. A
    label's text is set as text, never parsed.
    """
    return ui.label(text).classes("whitespace-pre-wrap break-all font-mono text-sm bg-gray-50 p-2 rounded w-full")


def short_time(iso: str | None) -> str:
    """``2026-11-21T07:40:18+00:00`` -> ``2026-11-21 07:40:18`` (times are UTC)."""
    return (iso or "")[:19].replace("T", " ")


ACTION_COLOR = {Action.NEW: "primary", Action.RESUME: "orange", Action.EXTEND: "teal", Action.COMPLETE: "grey",
                Action.PLOT: "purple"}


def action_color(action: str | None) -> str:
    return ACTION_COLOR.get(action or "", "grey")


def notify_report(report) -> None:
    """One notification per job a ``submit`` queued or skipped (and why)."""
    for q in report.queued:
        ui.notify(f"queued {q['job']}: {q['message']}", type="positive")
    for s in report.skipped:
        ui.notify(f"not queued: {s['reason']}", type="warning")
