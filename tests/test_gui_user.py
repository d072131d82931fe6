"""Cockpit screens through NiceGUI's simulated User: each screen's main actions, checked in the
queue and experiment files they must change (the same files the CLI reads)."""

from __future__ import annotations

import io
import json
import os
import time

from nicegui import ui
from nicegui.testing import User

from conftest import FAST, wait_for_async
from gui_fixtures import experiment_ids
from MLSystem.paths import ProjectPaths
from MLSystem.queue_store import JobQueue
from MLSystem.submit import submit

WAIT = 150  # should_see retries (0.1 s each): worker-thread reads and imports take a moment on 2 cores


def queue() -> JobQueue:
    return JobQueue(ProjectPaths.discover())


def stamped(row: dict) -> dict:
    """A metrics row with its time, as the logging callback writes it."""
    return {**row, "time": round(time.time(), 3)}


def set_value(user: User, marker: str, value: str) -> None:
    user.find(marker=marker).clear().type(value)


async def test_add_job_previews_decision_and_field_errors_then_queues(user: User) -> None:
    await user.open("/")
    await user.should_see(marker="field-lr", retries=WAIT)
    for key, value in (("n_train", "256"), ("n_val", "64"), ("batch_size", "32")):
        set_value(user, f"field-{key}", value)
    set_value(user, "field-max_epochs", "2")
    await user.should_see("already complete (2/2 epochs)", retries=WAIT)  # the template trained this one
    set_value(user, "field-max_epochs", "4")
    await user.should_see("extending", retries=WAIT)
    set_value(user, "field-lr", "fast")
    await user.should_see("lr: 'fast' is not a valid float", retries=WAIT)  # shown at the field
    set_value(user, "field-lr", "0.01")
    await user.should_see("differs in lr: 0.003 -> 0.01", retries=WAIT)  # why it is a new experiment
    user.find(marker="add-job").click()
    await user.should_see("queued job-", retries=WAIT)
    [job] = queue().pending()
    assert "lr=0.01" in job.args and "max_epochs=4" in job.args and job.action == "new"


async def test_sweep_preview_lists_every_combination(user: User) -> None:
    await user.open("/")
    await user.should_see(marker="overrides", retries=WAIT)
    set_value(user, "overrides", "lr=0.1,0.2,0.3 max_epochs=1")
    await user.should_see("3 jobs (sweep)", retries=WAIT)
    user.find(marker="add-job").click()
    await user.should_see("queued 3 jobs", retries=WAIT)
    assert len(queue().pending()) == 3


async def test_queue_reorder_priority_hold_edit_delete(user: User) -> None:
    ids = [submit(["dataset=digits", "model=mlp", f"lr={lr}", "max_epochs=1", *FAST]).queued[0]["job"]
           for lr in (0.1, 0.2, 0.3)]
    a, b, c = ids
    order = lambda: [j.id for j in queue().pending()]  # noqa: E731
    await user.open("/queue")
    await user.should_see(marker=f"job-{c}", retries=WAIT)
    user.find(marker=f"up-{c}").click()
    await wait_for_async(lambda: order() == [a, c, b])
    await user.should_see(marker=f"down-{a}", retries=WAIT)
    user.find(marker=f"next-{b}").click()
    await wait_for_async(lambda: order() == [b, a, c])
    await user.should_see(marker=f"hold-{a}", retries=WAIT)
    user.find(marker=f"hold-{a}").click()
    await wait_for_async(lambda: queue().get(a).held)
    await user.should_see(marker=f"release-{a}", retries=WAIT)
    user.find(marker=f"priority-{c}").clear().type("5")
    await wait_for_async(lambda: order()[0] == c and queue().get(c).priority == 5)
    # Edit with the same form and preview; the experiment ID follows the new overrides.
    await user.should_see(marker=f"edit-{a}", retries=WAIT)
    before = queue().get(a).experiment_id
    user.find(marker=f"edit-{a}").click()
    await user.should_see(marker="field-lr", retries=WAIT)
    set_value(user, "field-lr", "0.05")
    await user.should_see("new experiment", retries=WAIT)
    user.find(marker="edit-save").click()
    await wait_for_async(lambda: "lr=0.05" in queue().get(a).args)
    assert queue().get(a).experiment_id != before and not any(x == "lr=0.1" for x in queue().get(a).args)
    await user.should_see(marker=f"delete-{b}", retries=WAIT)
    user.find(marker=f"delete-{b}").click()
    await wait_for_async(lambda: b not in order())


async def test_failed_job_shows_error_and_log_and_requeues(user: User) -> None:
    q = queue()
    job_id = submit(["dataset=digits", "model=mlp", "lr=0.7", "max_epochs=1", *FAST]).queued[0]["job"]
    job = q.claim_next({"pid": os.getpid(), "host": q.host})
    q.paths.log(job_id).write_text("line one\nTraceback: boom\n")
    from MLSystem.jobs import Status

    q.complete(job, Status.FAILED, exit_code=1, error="RuntimeError: boom", ended="2026-01-01T00:00:00+00:00")
    await user.open("/queue")
    await user.should_see(marker=f"log-{job_id}", retries=WAIT)
    user.find(marker=f"log-{job_id}").click()
    await user.should_see("RuntimeError: boom", retries=WAIT)
    await user.should_see("Traceback: boom", retries=WAIT)
    user.find(marker=f"requeue-{job_id}").click()
    await wait_for_async(lambda: [j.id for j in q.pending()] == [job_id])


async def test_log_and_error_dialog_shows_text_never_markup(user: User) -> None:
    """A log line of three backticks must not end a code fence and turn the rest into Markdown/HTML."""
    q = queue()
    job_id = submit(["dataset=digits", "model=mlp", "lr=0.6", "max_epochs=1", *FAST]).queued[0]["job"]
    job = q.claim_next({"pid": os.getpid(), "host": q.host})
    log = "step 1\n```\n<img src=http://evil.example/log.png>\n[link](http://evil.example/a)\n```\nafter\n"
    q.paths.log(job_id).write_text(log)
    from MLSystem.jobs import Status

    error = "boom\n```\n![x](http://evil.example/error.png)"
    q.complete(job, Status.FAILED, exit_code=1, error=error, ended="2026-01-01T00:00:00+00:00")
    await user.open("/queue")
    await user.should_see(marker=f"log-{job_id}", retries=WAIT)
    user.find(marker=f"log-{job_id}").click()
    await user.should_see(marker="job-log", retries=WAIT)
    [shown_log] = user.find(marker="job-log").elements
    [shown_error] = user.find(marker="job-error").elements
    assert shown_log.text == log and shown_error.text == error  # every character, as text
    rendered = [type(el).__name__ for el in user.client.elements.values()
                if isinstance(el, (ui.markdown, ui.html)) and "evil.example" in json.dumps(el._props, default=str)]
    assert rendered == [], f"log text rendered as markup by {rendered}"


async def test_live_view_follows_metrics_across_a_resume_and_stops(user: User) -> None:
    q = queue()
    job_id = submit(["dataset=digits", "model=mlp", "lr=0.9", "max_epochs=5", *FAST]).queued[0]["job"]
    job = q.claim_next({"pid": os.getpid(), "host": q.host})  # a running job, as the runner would leave it
    q.update_running(job.id, pid=os.getpid())  # its process spawned
    exp = q.project.experiment(job.experiment_id)
    exp.dir.mkdir(parents=True)
    rows = [{"event": "new", "step": 0, "epoch": 0, "max_epochs": 5},
            {"step": 10, "epoch": 0, "loss": 2.0, "lr": 0.01}, {"step": 20, "epoch": 0, "loss": 1.5, "lr": 0.009}]
    exp.metrics.write_text("".join(json.dumps(stamped(r)) + "\n" for r in rows))
    exp.progress.write_text(json.dumps({"epoch": 1, "max_epochs": 5, "batch": 20, "batches": 40, "step": 20,
                                        "loss": 1.5}))
    await user.open("/live")
    await user.should_see(f"job {job_id}", retries=WAIT)
    await user.should_see("Epoch 1/5", retries=WAIT)
    chart = user.find(marker="loss-chart").elements.pop()
    await wait_for_async(lambda: len(chart.options["series"][0]["data"]) == 2)
    with open(exp.metrics, "a") as fh:  # a resume: marker plus new steps, appended like the callback does
        fh.write(json.dumps(stamped({"event": "resume", "step": 20, "epoch": 0, "max_epochs": 5})) + "\n")
        fh.write(json.dumps(stamped({"step": 30, "epoch": 0, "loss": 1.2, "lr": 0.008})) + "\n")
        fh.write(json.dumps(stamped({"step": 40, "epoch": 0, "kind": "epoch", "val_loss": 1.1, "val_acc": 0.6})) + "\n")
    await wait_for_async(lambda: len(chart.options["series"][0]["data"]) == 3)
    assert chart.options["series"][0]["markLine"]["data"][0]["xAxis"] == 20
    await user.should_see("resumed from epoch 0 (step 20)", retries=WAIT)
    await user.should_see(marker="live-metrics", retries=WAIT)
    assert user.find(marker="live-metrics").elements.pop().rows[0]["val_acc"] == "0.6"
    user.find(marker="live-stop").click()
    await wait_for_async(lambda: q.get(job_id).stop_requested and q.paths.stop_flag(job_id).exists())


async def test_live_view_is_fed_by_the_event_stream(user: User) -> None:
    """The live view shows what the cockpit's event stream (the one of /api/ws) says, and does not
    read the training files itself: with the event source stopped, a row written to the metrics log
    stays off the page while an event published by the broker shows."""
    from nicegui import app

    from MLSystem.events import schema

    q = queue()
    job_id = submit(["dataset=digits", "model=mlp", "lr=0.8", "max_epochs=5", *FAST]).queued[0]["job"]
    job = q.update_running(q.claim_next({"pid": os.getpid(), "host": q.host}).id, pid=os.getpid())
    exp = q.project.experiment(job.experiment_id)
    exp.dir.mkdir(parents=True)
    exp.metrics.write_text(json.dumps(stamped({"event": "new", "step": 0, "epoch": 0, "max_epochs": 5})) + "\n")
    await user.open("/live")
    await user.should_see(f"job {job_id}", retries=WAIT)
    chart = user.find(marker="loss-chart").elements.pop()

    def steps() -> list:
        return [x for x, _ in chart.options["series"][0]["data"]]
    with open(exp.metrics, "a") as fh:  # written like the logging callback: derived, then shown
        for step in (10, 20):
            fh.write(json.dumps(stamped({"step": step, "epoch": 0, "loss": 2.0 - step / 100, "lr": 0.01})) + "\n")
    await wait_for_async(lambda: steps() == [10, 20])

    broker = app.state.events
    await broker.stop()  # nothing derives events from the files any more
    with open(exp.metrics, "a") as fh:
        fh.write(json.dumps(stamped({"step": 30, "epoch": 0, "loss": 1.7, "lr": 0.01})) + "\n")
    event = schema.make("progress", time.time(), {"epoch": 1, "max_epochs": 5, "step": 25, "loss": 1.75, "lr": 0.01},
                        experiment_id=job.experiment_id, job_id=job_id, source="metrics")
    broker._publish([{**event, "seq": broker.last + 1}])
    await wait_for_async(lambda: steps() == [10, 20, 25])  # the event, and not the row written before it
    await user.should_see("global step 25", retries=WAIT)  # the progress bar follows events too


async def test_experiments_page_serves_its_first_rows(user: User, gui_project, monkeypatch) -> None:
    """The rows are in the HTML the server sends: a screenshot taken without waiting for the
    page's scripts shows them, not an empty "No data available" table; a listing too slow for
    that shows a loading state instead."""
    from MLSystem.gui.index import ExperimentIndex
    from MLSystem.gui.pages import experiments

    ids = experiment_ids(gui_project)
    await user.http_client.get("/api/experiments")  # imports and listing caches warm, as in a running cockpit
    html = (await user.http_client.get("/experiments")).text
    assert ids["cnn"] in html and ids["echo"] in html and "2 experiments" in html
    assert "No data available" not in html and experiments.LOADING not in html

    slow_page = ExperimentIndex.page

    def page(self, **kw):
        time.sleep(experiments.FIRST_PAGE_WAIT + 0.5)
        return slow_page(self, **kw)

    # (FIRST_PAGE_WAIT itself cannot be patched: NiceGUI's test reset re-imports page modules,
    # and a route registered earlier in the session may belong to the previous module object)
    monkeypatch.setattr(ExperimentIndex, "page", page)
    html = (await user.http_client.get("/experiments")).text
    assert experiments.LOADING in html and "No data available" not in html and ids["cnn"] not in html


async def test_experiments_filter_detail_and_add_epochs(user: User, gui_project) -> None:
    ids = experiment_ids(gui_project)
    await user.open("/experiments")
    await user.should_see("2 experiments", retries=WAIT)
    set_value(user, "exp-filter", "echo")
    await user.should_see("1 experiment", retries=WAIT)
    assert [r["id"] for r in user.find(marker="exp-table").elements.pop().rows] == [ids["echo"]]
    await user.open(f"/experiments/{ids['cnn']}")
    await user.should_see("no parent", retries=WAIT)
    names = [r["name"] for r in user.find(marker="detail-checkpoints").elements.pop().rows]
    assert names == ["epoch-0001", "epoch-0002", "last"]
    set_value(user, "diff-other", ids["echo"][:6])
    user.find(marker="diff-compare").click()
    await user.should_see(marker="diff-table", retries=WAIT)
    assert {"key": "model", "this": "cnn", "other": "echo"} in user.find(marker="diff-table").elements.pop().rows
    set_value(user, "detail-epochs", "4")
    user.find(marker="detail-add-epochs").click()
    [job] = await wait_for_async(queue().pending)
    assert job.experiment_id == ids["cnn"] and job.action == "extend" and job.max_epochs == 4
    await user.open("/experiments/not-an-id")
    await user.should_see("expected hexadecimal", retries=WAIT)


async def test_checkpoint_screen_queues_a_warm_start(user: User, gui_project) -> None:
    cnn = experiment_ids(gui_project)["cnn"]
    await user.open(f"/checkpoints?experiment={cnn}&checkpoint=epoch-0001")
    await user.should_see(f"epoch-0001 of experiment {cnn}", retries=WAIT)
    await user.should_see("new experiment", retries=WAIT)  # the preview: a new experiment, parent kept
    user.find(marker="ckpt-light").click()
    set_value(user, "ckpt-epochs", "2")
    user.find(marker="ckpt-queue").click()
    [job] = await wait_for_async(queue().pending)
    assert f"init_from={cnn}/epoch-0001" in [a.replace("'", "") for a in job.args]  # submit may quote it
    assert "limit_samples=256" in job.args
    assert job.action == "new" and job.experiment_id != cnn and job.max_epochs == 2


def _wav(seconds: float, rate: int = 16000) -> bytes:
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 220 * t)], axis=1)
    buf = io.BytesIO()
    sf.write(buf, stereo.astype("float32"), rate, format="WAV")
    return buf.getvalue()


async def test_inference_upload_shows_transcript_and_rtf(user: User, gui_project) -> None:
    echo = experiment_ids(gui_project)["echo"]
    await user.open("/inference")
    # At once: read from the model's source, without importing torch and the model code (seconds).
    await user.should_see("1 experiment with a speech model", retries=50)
    assert user.find(marker="inf-experiment").elements.pop().value == echo
    await user.should_see(marker="inf-checkpoint", retries=WAIT)
    await wait_for_async(lambda: user.find(marker="inf-checkpoint").elements.pop().value == "last")
    upload = user.find(ui.upload).elements.pop()
    await upload.handle_uploads([ui.upload.SmallFileUpload("voice.wav", "audio/wav", _wav(0.5))])
    await user.should_see("echo 8000 samples at 16000 Hz", retries=300)  # mono: stereo was mixed down
    await user.should_see("real-time factor", retries=WAIT)
    await upload.handle_uploads([ui.upload.SmallFileUpload("notes.txt", "text/plain", b"hello")])
    await user.should_see("unsupported format", retries=WAIT)


async def test_checkpoint_list_shows_its_first_page_then_the_rest(user: User, gui_project) -> None:
    """Many checkpoints: the first page is listed first, then the count and every page."""
    from MLSystem.experiment_store import init_record, update_record

    paths = ProjectPaths.discover(gui_project)
    for i in range(40):  # 40 synthetic experiments with 2 checkpoints each, newer than the trained ones
        exp = paths.experiment(f"{i:012x}")
        init_record(exp, {"dataset": "digits", "model": "mlp", "adapter": "digits", "params": {"seed": i}},
                    {"seed": i}, {}, None)
        update_record(exp, status="complete", max_epochs=1)
        exp.checkpoints.mkdir(parents=True)
        for name in ("epoch-0001.ckpt", "last.ckpt"):
            (exp.checkpoints / name).write_bytes(b"\0" * 64)
    total = len(list((gui_project / "output" / "experiments").glob("*/checkpoints/*.ckpt")))  # 80 + the trained ones

    async def indexed() -> bool:  # the cockpit refreshes its index at most every few seconds
        r = await user.http_client.get("/api/checkpoints", params={"limit": 1000})
        return len(r.json()["checkpoints"]) == total

    await wait_for_async(indexed, what="the new experiments in the cockpit's index")
    await user.open("/checkpoints")
    await user.should_see(f"{total} checkpoints", retries=WAIT)
    assert user.find(marker="ckpt-pages").elements.pop().max == -(-total // 50)
    assert len(user.find(marker="ckpt-table").elements.pop().rows) == 50


async def test_experiments_page_says_how_far_a_first_index_build_is(user: User, gui_project, monkeypatch) -> None:
    """A project's first listing reads every folder (100,000: 20-40 s): the page says how far it is,
    then shows the rows."""
    from MLSystem.gui.index import ExperimentIndex
    from MLSystem.gui.pages import experiments

    slow_page = ExperimentIndex.page
    building = {"now": (1500, 4000)}

    def page(self, **kw):
        time.sleep(experiments.FIRST_PAGE_WAIT + 2.0)
        building["now"] = None  # the build ended
        return slow_page(self, **kw)

    monkeypatch.setattr(ExperimentIndex, "page", page)
    monkeypatch.setattr(ExperimentIndex, "building", lambda self: building["now"])
    await user.open("/experiments")
    await user.should_see("Indexing experiment folders: 1,500 of 4,000", retries=WAIT)
    await user.should_see("2 experiments", retries=WAIT)
