"""The cockpit with several slots: the queue page shows which job runs where, the live page follows
any running job through its picker, the runner starts with slot options (page and REST API), and
``/api/runner`` lists the running jobs with their slots."""

from __future__ import annotations

import os

from nicegui.testing import User

from conftest import FAST, wait_for_async
from MLSystem.paths import ProjectPaths
from MLSystem.queue_store import JobQueue
from MLSystem.scheduler import Placement
from MLSystem.submit import submit

WAIT = 150


def two_running(root) -> tuple[JobQueue, list]:
    """Two running jobs, as a 2-slot runner with GPUs 0 and 1 would leave them."""
    q = JobQueue(ProjectPaths.discover(root))
    for lr in (0.7, 0.8):
        submit(["dataset=digits", "model=mlp", f"lr={lr}", "max_epochs=5", *FAST], queue=q)
    jobs = []
    for slot in (0, 1):
        job = q.claim_next({"pid": os.getpid(), "host": q.host})
        jobs.append(q.update_running(job.id, pid=os.getpid(), placement=Placement(slot, (str(slot),), 1).to_dict()))
    return q, jobs


async def test_queue_page_and_api_show_slots_live_picker_follows_either_job(user: User, gui_project) -> None:
    q, (a, b) = two_running(gui_project)
    await user.open("/queue")
    await user.should_see(marker=f"slot-{a.id}", retries=WAIT)
    await user.should_see("slot 0 · GPU 0", retries=WAIT)
    await user.should_see("slot 1 · GPU 1", retries=WAIT)
    r = (await user.http_client.get("/api/runner")).json()
    assert [(s["slot"], s["gpus"], s["job"], s["experiment_id"]) for s in r["slots"]] == [
        (0, ["0"], a.id, a.experiment_id), (1, ["1"], b.id, b.experiment_id)]

    await user.open("/live")
    await user.should_see(f"job {a.id}", retries=WAIT)  # the lowest slot by default
    picker = user.find(marker="live-picker").elements.pop()
    await wait_for_async(lambda: set(picker.options) == {a.experiment_id, b.experiment_id})
    assert picker.visible and picker.options[b.experiment_id].startswith(f"slot 1 · GPU 1 · {b.id}")
    picker.value = b.experiment_id  # the user picks the other job
    await user.should_see(f"job {b.id} · experiment {b.experiment_id}", retries=WAIT)
    user.find(marker="live-stop").click()  # the stop button acts on the followed job only
    await wait_for_async(lambda: q.get(b.id).stop_requested is not None)
    assert q.get(a.id).stop_requested is None


async def test_runner_starts_with_slot_options_and_refuses_bad_ones(user: User, gui_project, monkeypatch) -> None:
    monkeypatch.setenv("MLSYSTEM_FAKE_GPUS", "2")
    client = user.http_client
    r = await client.post("/api/runner/start", json={"gpus": "0,7"})
    assert r.status_code == 400 and "GPU 7 not found; available: 0,1" in r.json()["detail"]
    assert (await client.post("/api/runner/start", json={"slots": 0})).status_code == 422
    runner_log = gui_project / "queue/logs/runner.log"
    await user.open("/queue")
    await user.should_see(marker="runner-slots", retries=WAIT)
    user.find(marker="runner-slots").type("3")
    user.find(marker="runner-start").click()
    # The runner logs its slots when it starts (it then exits: nothing is queued).
    await wait_for_async(lambda: runner_log.exists() and "3 slot(s)" in runner_log.read_text(), 120, "a 3-slot runner")
    await wait_for_async(lambda: JobQueue(ProjectPaths.discover(gui_project)).active_runner() is None, 120,
                         "the runner to exit")
