"""GPU placement on a real GPU, the check CI cannot run (it has none): ``runner --gpus all`` counts the
GPUs through NVML, each GPU job gets its own ``CUDA_VISIBLE_DEVICES`` and trains on CUDA, two jobs
never share a GPU, a CPU job gets no GPU (``CUDA_VISIBLE_DEVICES`` empty), and a process outside
the queue computing on a GPU holds GPU jobs back until it ends. ``test_slots.py`` proves the same
logic on fake GPUs everywhere; this file is skipped where torch sees no CUDA device.
bench/README.md#parallel-slots has the runs on a lent H100.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch
from conftest import FAST, job_record, run_cli, wait_for
from test_runner import finish, queued, start_runner

from MLSystem.placement import busy_gpus
from MLSystem.utils.clock import parse_iso

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="needs a CUDA GPU (CI and the development VM have none; "
                                        "run it on a GPU machine, see bench/README.md)")]

GPU_JOB = ["dataset=digits", "model=mlp", "accelerator=gpu", "devices=1", "max_epochs=2", *FAST]


def used_cuda(root, experiment_id: str) -> bool:
    """Lightning's own report in the experiment's train.log: it trained on a CUDA device."""
    log = root / "output/experiments" / experiment_id / "train.log"
    return "GPU available: True (cuda), used: True" in log.read_text()


def test_gpu_jobs_get_their_own_gpu_and_train_on_cuda_a_cpu_job_gets_none(project):
    gpus = [str(i) for i in range(torch.cuda.device_count())]
    exp = dict(queued(*GPU_JOB, f"lr={lr}") for lr in (0.1, 0.2, 0.3))
    gpu_jobs = list(exp)
    cpu_job, cpu_exp = queued("dataset=digits", "model=mlp", "accelerator=cpu", "lr=0.7", "max_epochs=2", *FAST)
    exp[cpu_job] = cpu_exp
    out = run_cli(project, "MLSystem.runner", "--gpus", "all", "--json", check=True).stdout
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["event"] == "slots" and events[0]["gpus"] == gpus  # counted through NVML
    recs = {j: job_record(project, j) for j in (*gpu_jobs, cpu_job)}
    assert all(r["status"] == "finished" for r in recs.values()), recs
    for j in gpu_jobs:
        assert len(recs[j]["placement"]["gpus"]) == 1 and recs[j]["placement"]["gpus"][0] in gpus
        assert used_cuda(project, exp[j]), (project / "queue/logs" / f"{j}.log").read_text()[-2000:]
    assert recs[cpu_job]["placement"]["gpus"] == [] and not used_cuda(project, exp[cpu_job])
    for a in gpu_jobs:  # two jobs on one GPU never overlap in time
        for b in gpu_jobs:
            if a < b and recs[a]["placement"]["gpus"] == recs[b]["placement"]["gpus"]:
                assert (parse_iso(recs[a]["ended"]) <= parse_iso(recs[b]["started"])
                        or parse_iso(recs[b]["ended"]) <= parse_iso(recs[a]["started"])), (recs[a], recs[b])


def test_a_process_outside_the_queue_on_the_gpu_holds_gpu_jobs_until_it_exits(project):
    # A CUDA context is enough for NVML to list the process as computing on GPU 0.
    hog = subprocess.Popen([sys.executable, "-c", "import sys, torch; torch.ones(1, device='cuda:0'); "
                            "sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.read()"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert hog.stdout.readline().strip() == "ready"
        wait_for(lambda: busy_gpus(["0"]) == {"0"}, timeout=30, what="NVML to list the outside process")
        job, eid = queued(*GPU_JOB, "lr=0.4")
        runner = start_runner(project, "--gpus", "0")
        time.sleep(8)  # the runner has had many scheduling rounds with GPU 0 busy
        assert job_record(project, job).get("started") is None, job_record(project, job)
        released = time.time()
        hog.stdin.close()
        hog.wait(timeout=30)
        assert finish(runner) == 0
    finally:
        hog.kill()
    rec = job_record(project, job)
    assert rec["status"] == "finished" and rec["placement"]["gpus"] == ["0"] and used_cuda(project, eid)
    assert parse_iso(rec["started"]) >= released
