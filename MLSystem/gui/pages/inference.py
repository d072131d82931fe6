"""Page ``/inference``: pick a speech experiment and checkpoint, upload audio, read the transcript and RTF."""

from __future__ import annotations

from nicegui import events, run, ui

from MLSystem.checkpoint_manager import list_checkpoints
from MLSystem.errors import MLSystemError
from MLSystem.gui.context import Cockpit
from MLSystem.gui.inference import AUDIO_SUFFIXES, MAX_UPLOAD_BYTES, find_inference_models
from MLSystem.gui.layout import frame


def _candidates(cockpit: Cockpit, import_code: bool) -> tuple[dict[str, str], int]:
    """Experiments with a checkpoint whose model can transcribe, and how many models are still
    undecided. Without ``import_code`` it reads only source files and the cached listing: instant."""
    models, undecided = find_inference_models(cockpit.paths, import_code=import_code)
    rows = [r for r in cockpit.experiments.rows() if r["model"] in set(models)]
    options = {r["id"]: f"{r['id']} · {r['model']} on {r['dataset']} · {r['epochs']} epochs" for r in rows[:500]
               if cockpit.paths.experiment(r["id"]).checkpoints.is_dir()}
    return options, len(undecided)


class InferencePanel:
    def __init__(self, cockpit: Cockpit):
        self.cockpit = cockpit
        self.status = ui.label("Looking for speech models…").mark("inf-status")  # replaced at once
        with ui.row().classes("items-end gap-3"):
            self.experiment = ui.select({}, label="Experiment", on_change=self.experiment_changed).classes(
                "w-[32rem]").mark("inf-experiment")
            self.checkpoint = ui.select([], label="Checkpoint").classes("w-48").mark("inf-checkpoint")
        ui.upload(label=f"Audio ({', '.join(AUDIO_SUFFIXES)}, ≤ {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB)",
                  auto_upload=True, max_file_size=MAX_UPLOAD_BYTES, on_upload=self.transcribe,
                  on_rejected=lambda: ui.notify("file too large", type="negative")).props(
            f"accept={','.join(AUDIO_SUFFIXES)}").classes("w-[32rem]").mark("inf-upload")
        with ui.card().classes("w-full"):
            self.transcript = ui.label("").classes("text-lg font-mono").mark("inf-transcript")
            self.timing = ui.label("").classes("text-sm text-gray-600").mark("inf-timing")
        ui.timer(0.01, self.load, once=True)

    async def load(self) -> None:
        # First what the source files tell (instant), then, only if some model's class is not
        # decidable from its source, what importing it tells (torch + Lightning: seconds).
        for import_code in (False, True):
            try:
                options, undecided = await run.io_bound(_candidates, self.cockpit, import_code)
            except MLSystemError as exc:
                self.status.text = str(exc)
                return
            if options != self.experiment.options:
                self.experiment.set_options(options, value=self.experiment.value if self.experiment.value in options
                                            else next(iter(options), None))
            checking = f" (checking {undecided} more model{'s' if undecided != 1 else ''}…)" if undecided else ""
            self.status.text = (f"{len(options)} experiment{'s' if len(options) != 1 else ''} with a speech model"
                                if options else "No trained experiment has a model with an inference() method yet.")
            self.status.text += checking
            if not undecided:
                return

    async def experiment_changed(self) -> None:
        eid = self.experiment.value
        names = await run.io_bound(lambda: [c.name for c in list_checkpoints(self.cockpit.paths.experiment(eid))]) \
            if eid else []
        self.checkpoint.set_options(names or [], value="last" if "last" in (names or []) else (names or [None])[-1])

    async def transcribe(self, e: events.UploadEventArguments) -> None:
        if not self.experiment.value:
            ui.notify("choose an experiment first", type="warning")
            return
        data = await e.file.read()
        self.transcript.text, self.timing.text = "…", ""
        try:
            result = await run.io_bound(self.cockpit.models.transcribe, self.experiment.value, self.checkpoint.value,
                                        data, e.file.name)
        except MLSystemError as exc:
            self.transcript.text = ""
            self.timing.text = str(exc)
            ui.notify(str(exc), type="negative", multi_line=True)
            return
        if result is None:
            return
        self.transcript.text = result.text or "(empty transcript)"
        self.timing.text = (f"{result.audio_seconds:.2f} s of audio at {result.sample_rate} Hz transcribed in "
                            f"{result.elapsed_seconds:.3f} s — real-time factor {result.rtf:.3f}")


def register(cockpit: Cockpit) -> None:
    @ui.page("/inference")
    def inference_page() -> None:
        with frame("Inference test"):
            InferencePanel(cockpit)
