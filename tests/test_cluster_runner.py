"""The runner on a cluster executor (``--executor submitit-local|slurm``, MLSystem.cluster_executor):
the same outcomes as the local slots, engine job ids in the job files, stop through the engine, and
never a second submission — neither when the runner is SIGKILLed between the submission and
recording the engine id, nor when it dies while its jobs run (a new runner reattaches)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FAST, add_probe_model, cli_env, job_record, make_project, run_cli, wait_for
from MLSystem.jobs import QueuePaths
from MLSystem.paths import ProjectPaths
from MLSystem.engine_view import stop_markers
from MLSystem.submitit_job import find_tagged
from slurm_fixtures import slurm_cluster, slurm_two_nodes  # noqa: F401  (fixtures)
from test_submitit_job import PROBE, _assert_same_run, _segments, ddp_reference, reference  # noqa: F401  (fixtures)

SLOW_PROBE = ["dataset=digits", "model=probe", "max_epochs=1", "n_train=640", "n_val=32", "batch_size=32",
              "accelerator=cpu"]  # 20 steps


def _queue(root: Path, *args: str) -> list[str]:
    out = run_cli(root, "MLSystem.submit", *args, "--json", check=True).stdout
    return [q["job"] for q in json.loads(out)["queued"]]


def _runner(root: Path, *args: str, fault: str | None = None, **env_extra: str) -> subprocess.Popen:
    env = cli_env(root, **({"MLSYSTEM_RUNNER_FAULT": fault} if fault else {}), **env_extra)
    out = open(root / "runner-out.txt", "ab")
    return subprocess.Popen([sys.executable, "-m", "MLSystem.runner", *args], cwd=root, env=env,
                            stdout=out, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, root: Path, timeout: float = 600) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError((root / "runner-out.txt").read_text()[-3000:]) from None


def _stepped(root: Path, job_id: str, steps: int = 2) -> bool:
    f = root / "queue/logs" / f"{job_id}.metrics.jsonl"
    rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip().endswith("}")] if f.exists() else []
    return any(r.get("step", 0) >= steps for r in rows)


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (what a node failure does to a job)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo, tree = [pid], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _submissions(root: Path, job_id: str) -> list[str]:
    """Engine job ids submitit recorded for this queue job, over all its attempts."""
    return sorted(p.name.split("_submitted")[0] for p in (root / "queue/engine" / job_id).glob("*/*_submitted.pkl"))


def _training(root: Path, job: str, exp, step: int) -> bool:
    """The job's every task handles the engine's stop signal and training has reached ``step``."""
    engine = job_record(root, job).get("engine") or {}
    markers = stop_markers(root / engine["folder"], engine["job_id"]) if engine.get("job_id") else []
    return bool(markers and len(markers) == markers[0]["tasks"] and exp.progress.exists()
                and json.loads(exp.progress.read_text())["step"] >= step)


def _engine_submissions(root: Path, record: dict) -> list[str]:
    """Engine job ids submitit recorded for the attempt in ``record`` (its task only, in an array's folder)."""
    engine = record["engine"]
    names = [p.name.split("_submitted")[0] for p in (root / engine["folder"]).glob("*_submitted.pkl")]
    if "array_index" in engine:
        names = [n for n in names if n.split("_")[-1] == str(engine["array_index"])]
    return sorted(names)


@pytest.mark.slow
def test_submitit_local_runner_files_the_same_outcomes_as_local_slots(tmp_path):
    root = make_project(tmp_path / "proj")
    add_probe_model(root)
    ok = _queue(root, "dataset=digits", "model=mlp", "max_epochs=1", *FAST, "accelerator=cpu")[0]
    bad = _queue(root, "dataset=digits", "model=mlp", "max_epochs=1", *FAST, "accelerator=cpu", "seed=7")[0]
    # a job whose overrides stopped being valid after it was queued: execute_train exits 2 (bad input)
    path = root / "queue/pending" / f"{bad}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "args": ["dataset=digits", "model=mlp", "no_such=1"]}))
    stop = _queue(root, *SLOW_PROBE, "step_sleep=0.5", "seed=1")[0]
    node = _queue(root, *SLOW_PROBE, "step_sleep=0.3", "seed=2")[0]
    runner = _runner(root, "--executor", "submitit-local", "--max-running", "4")
    wait_for(lambda: _stepped(root, stop) and _stepped(root, node), timeout=300, what="both probes to train")
    # the graceful stop (cockpit and CLI share it), through the engine's signal once the job's wrapper
    # handles it (else the stop flag): checkpoint at the next step, exit 3 -> stopped/
    wait_for(lambda: stop_markers(root / job_record(root, stop)["engine"]["folder"],
                                  job_record(root, stop)["engine"]["job_id"]), timeout=60, what="the stop handler")
    said = run_cli(root, "MLSystem.submit", "--stop", stop, check=True).stdout
    assert "SIGUSR1 to submitit-local job" in said, said
    # the engine's job dies with everything in it (a node failure): interrupted by the infrastructure
    _kill_tree(int(job_record(root, node)["engine"]["job_id"]))
    assert _finish(runner, root) == 0, (root / "runner-out.txt").read_text()[-3000:]
    got = {j: job_record(root, j) for j in (ok, bad, stop, node)}
    assert {j: r["status"] for j, r in got.items()} == {ok: "finished", bad: "failed", stop: "stopped",
                                                       node: "finished"}, (root / "runner-out.txt").read_text()
    assert got[bad]["exit_code"] == 2 and "no_such" in got[bad]["error"]
    assert got[stop]["exit_code"] == 3 and "stopped on request" in got[stop]["note"]
    first, second = got[node]["history"]
    assert first["outcome"] == "pending" and "interrupted by the infrastructure" in first["note"]
    assert got[node]["attempts"] == 1  # the engine's failure is not the job's
    for j, r in got.items():  # every attempt recorded its engine job id, and each went out once
        assert r["engine"]["executor"] == "submitit-local" and r["engine"]["job_id"]
        assert _submissions(root, j) == sorted(h["engine"]["job_id"] for h in r["history"])


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["submitit-local", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_runner_killed_between_submission_and_record_reattaches_instead_of_resubmitting(tmp_path, executor,
                                                                                         request):
    extra = []
    if executor == "slurm":
        extra = ["--partition", request.getfixturevalue("slurm_cluster"), "--cpus-per-task", "1"]
    root = make_project(tmp_path / "proj")
    job = _queue(root, "dataset=digits", "model=mlp", "max_epochs=1", *FAST, "accelerator=cpu")[0]
    first = _runner(root, "--executor", executor, *extra, fault="after_submit")
    assert _finish(first, root, 300) == -signal.SIGKILL
    left = job_record(root, job)
    assert left["status"] == "running" and left["engine"]["tag"] and not left["engine"].get("job_id")
    assert _finish(_runner(root, "--executor", executor, *extra), root) == 0
    done = job_record(root, job)
    out = (root / "runner-out.txt").read_text()
    assert done["status"] == "finished" and "reattached" in out, out
    assert _submissions(root, job) == [done["engine"]["job_id"]]  # one submission, found again
    assert len(done["history"]) == 1 and done["engine"].get("found") == "after a runner crash"
    if executor == "slurm":
        assert find_tagged(left["engine"]["tag"]) == [done["engine"]["job_id"]]


@pytest.mark.slurm
@pytest.mark.slow
def test_sweep_drains_through_slurm_once_each_across_a_runner_sigkill_and_stops(slurm_cluster, tmp_path):
    root = make_project(tmp_path / "proj")
    add_probe_model(root)
    jobs = _queue(root, *SLOW_PROBE, "step_sleep=0.4", "seed=1,2,3")
    flags = ["--executor", "slurm", "--partition", slurm_cluster, "--cpus-per-task", "1", "--mem-gb", "1",
             "--max-running", "2"]  # memory is a consumable here: without --mem-gb a job takes the whole node
    runner = _runner(root, *flags)
    wait_for(lambda: _stepped(root, jobs[0]) and _stepped(root, jobs[1]), timeout=300,
             what="the first two jobs training on Slurm")  # the third waits for a free slot (--max-running 2)
    runner.kill()  # the runner dies; its jobs run on in their allocations
    runner.wait()
    listed = json.loads(run_cli(root, "MLSystem.submit", "--list", "--json", check=True).stdout)["jobs"]
    live = {r["id"]: r.get("engine_state") for r in listed if r["status"] == "running"}
    assert live == {jobs[0]: "RUNNING", jobs[1]: "RUNNING"}, live  # asked from Slurm, no runner involved
    text = run_cli(root, "MLSystem.submit", "--list", check=True).stdout
    assert all(f"slurm {job_record(root, j)['engine']['job_id']}" in text for j in live), text
    second = _runner(root, *flags)
    # the third job goes out once a slot frees; stopped like a local one (its flag on the shared filesystem)
    wait_for(lambda: _stepped(root, jobs[2]), timeout=300, what="the third job training on Slurm")
    run_cli(root, "MLSystem.submit", "--stop", jobs[2], check=True)
    assert _finish(second, root) == 0
    out = (root / "runner-out.txt").read_text()
    assert out.count("reattached to slurm job") == 2, out
    stopped = job_record(root, jobs[2])
    assert (stopped["status"], stopped["exit_code"]) == ("stopped", 3), stopped
    ids = []
    for j in jobs:
        r = job_record(root, j)
        assert r["status"] == ("stopped" if j == jobs[2] else "finished") and len(r["history"]) == 1, (r, out[-3000:])
        assert _engine_submissions(root, r) == [r["engine"]["job_id"]]
        assert find_tagged(r["engine"]["tag"]).count(r["engine"]["job_id"]) == 1  # Slurm saw it once
        ids.append(r["engine"]["job_id"])
    assert len(set(ids)) == 3


@pytest.mark.slow
def test_a_detached_runner_leaves_its_jobs_running_and_a_later_one_files_them(tmp_path):
    root = make_project(tmp_path / "proj")
    job = _queue(root, "dataset=digits", "model=mlp", "max_epochs=1", *FAST, "accelerator=cpu")[0]
    assert _finish(_runner(root, "--executor", "submitit-local", "--detach"), root, 120) == 0
    out = (root / "runner-out.txt").read_text()
    assert job_record(root, job)["status"] == "running" and "1 job(s) still run on submitit-local" in out, out
    assert _finish(_runner(root, "--executor", "submitit-local"), root) == 0
    done = job_record(root, job)
    assert done["status"] == "finished" and len(done["history"]) == 1
    assert _submissions(root, job) == [done["engine"]["job_id"]]


@pytest.mark.slurm
@pytest.mark.slow
def test_stop_of_a_slurm_job_goes_through_the_engine_signal_and_resumes_exactly(slurm_cluster, tmp_path, reference):
    root = make_project(tmp_path / "proj")
    add_probe_model(root)
    job = _queue(root, *PROBE, "step_sleep=0.5", "accelerator=cpu")[0]  # 14 steps, 7 per epoch
    flags = ["--executor", "slurm", "--partition", slurm_cluster, "--cpus-per-task", "1", "--mem-gb", "1"]
    runner = _runner(root, *flags)
    exp = ProjectPaths(root).experiment(reference.name)

    wait_for(lambda: _training(root, job, exp, 3), timeout=300, what="the job training on Slurm")
    said = run_cli(root, "MLSystem.submit", "--stop", job, check=True).stdout
    jid = job_record(root, job)["engine"]["job_id"]
    assert f"scancel --signal=USR1 {jid}" in said, said  # the engine's signal, not the stop flag
    assert _finish(runner, root) == 0
    stopped, log = job_record(root, job), (root / "queue/logs" / f"{job}.log").read_text()
    assert (stopped["status"], stopped["exit_code"]) == ("stopped", 3), (stopped, log[-3000:])
    assert len(stopped["history"]) == 1 and stopped["note"].startswith("stopped on request")  # not requeued
    assert not QueuePaths(root / "queue").stop_flag(job).exists()
    assert "stop signal SIGUSR1 from the engine" in log and "received SIGTERM" in log, log[-3000:]
    first = _segments(exp.dir)
    assert [s["status"] for s in first] == ["stopped"] and 3 <= first[0]["to_step"] < 14
    assert not stop_markers(root / stopped["engine"]["folder"], jid)  # the wrapper is gone
    # the same job resumes where it stopped, as if never interrupted
    run_cli(root, "MLSystem.submit", "--requeue", job, check=True)
    assert _finish(_runner(root, *flags), root) == 0
    assert job_record(root, job)["status"] == "finished"
    assert [s["status"] for s in _segments(exp.dir)] == ["stopped", "complete"]
    _assert_same_run(exp.dir, reference)


class _EngineSampler:
    """Samples ``squeue`` for one array while the runner drains it: the most tasks Slurm ran at once,
    and whether it held tasks back for the array's cap (reason ``JobArrayTaskLimit``)."""

    def __init__(self, array_id: str):
        import threading

        self.array_id, self.most_running, self.held_by_cap, self.seen = array_id, 0, False, set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            out = subprocess.run(["squeue", "-h", "-r", "-j", self.array_id, "-o", "%i %T %r"],
                                 capture_output=True, text=True).stdout.split("\n")
            rows = [line.split() for line in out if line.strip()]
            self.seen |= {r[0] for r in rows}
            self.most_running = max(self.most_running, sum(1 for r in rows if r[1] == "RUNNING"))
            self.held_by_cap |= any(r[1] == "PENDING" and r[2] == "JobArrayTaskLimit" for r in rows)
            self._done.wait(0.1)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


@pytest.mark.slurm
@pytest.mark.slow
def test_a_sweep_goes_to_slurm_as_one_capped_array_once_across_a_runner_sigkill_after_sbatch(slurm_cluster,
                                                                                              tmp_path):
    root = make_project(tmp_path / "proj")
    jobs = _queue(root, "dataset=digits", "model=mlp", "max_epochs=1", *FAST, "accelerator=cpu", "seed=1,2,3,4")
    # the node has 2 cores (2 one-core jobs fit at once): only the array's cap keeps them to 1
    flags = ["--executor", "slurm", "--partition", slurm_cluster, "--cpus-per-task", "1", "--mem-gb", "1",
             "--max-running", "4", "--array-parallelism", "1"]
    assert _finish(_runner(root, *flags, fault="after_submit"), root, 300) == -signal.SIGKILL
    left = [job_record(root, j) for j in jobs]
    tag = left[0]["engine"]["tag"]
    assert all(r["status"] == "running" and not r["engine"].get("job_id") and r["engine"]["tag"] == tag
               for r in left), left  # killed right after sbatch: the records hold the intent, no ids
    assert [r["engine"]["array_index"] for r in left] == [0, 1, 2, 3]
    array_id = find_tagged(tag)[0].split("_")[0]
    sampler = _EngineSampler(array_id)
    shown = subprocess.run(["scontrol", "show", "job", array_id], capture_output=True, text=True).stdout
    assert "ArrayTaskThrottle=1" in shown, shown
    try:
        assert _finish(_runner(root, *flags), root) == 0
    finally:
        sampler.stop()
    out = (root / "runner-out.txt").read_text()
    assert out.count("reattached to slurm job") == 4, out
    done = [job_record(root, j) for j in jobs]
    assert [r["engine"]["job_id"] for r in done] == [f"{array_id}_{i}" for i in range(4)], done
    assert all(r["status"] == "finished" and len(r["history"]) == 1 for r in done), done
    folder = root / left[0]["engine"]["folder"]
    assert sorted(p.name.split("_submitted")[0] for p in folder.glob("*_submitted.pkl")) == \
        [f"{array_id}_{i}" for i in range(4)]  # one sbatch, four tasks: nothing went out twice
    assert not any((root / "queue/engine" / j).exists() for j in jobs[1:])
    assert sampler.most_running == 1 and sampler.held_by_cap, (sampler.most_running, sampler.seen)


def test_an_array_job_without_its_engine_id_is_found_by_its_own_submission_file(tmp_path):
    """After the controller forgot the tag (MinJobAge), a job of an array is its own task's pickle."""
    from MLSystem.cluster_executor import SubmititExecutor
    from MLSystem.jobs import Job

    root = make_project(tmp_path / "proj")
    folder = root / "queue/engine/job-aaaaaaaa/1"
    folder.mkdir(parents=True)
    for name in ("555_0", "555_1", "555_10", "556"):
        (folder / f"{name}_submitted.pkl").write_bytes(b"")
    executor = SubmititExecutor("slurm", ProjectPaths(root))
    engine = {"executor": "slurm", "tag": "mlsystem:array-job-aaaaaaaa:1", "folder": "queue/engine/job-aaaaaaaa/1"}
    found = {i: executor.reattach(Job(id=f"job-{i}", kind="train", args=[], engine={**engine, "array_index": i}))
             for i in (0, 1, 10, 3)}
    assert {i: r.engine_id if r else None for i, r in found.items()} == {0: "555_0", 1: "555_1", 10: "555_10", 3: None}
    alone = executor.reattach(Job(id="job-b", kind="train", args=[], engine=engine))
    assert alone.engine_id == "556"


@pytest.mark.slurm
@pytest.mark.slow
def test_a_two_node_job_stopped_through_the_engine_resumes_like_two_processes_on_one_machine(
        slurm_two_nodes, tmp_path, ddp_reference):
    root = make_project(tmp_path / "proj")
    add_probe_model(root)
    # one process on each of 2 nodes: the same world (2 ranks) as devices=2 on one machine
    job = _queue(root, *PROBE, "accelerator=cpu", "devices=1", "num_nodes=2", "step_sleep=1.0")[0]
    flags = ["--executor", "slurm", "--partition", "two", "--cpus-per-task", "1", "--mem-gb", "1"]
    # the nodes' names do not resolve here (two slurmd on one host): the rendezvous address is given
    env = {"SLURM_CONF": slurm_two_nodes, "MASTER_ADDR": "127.0.0.1"}
    runner = _runner(root, *flags, **env)
    exp = ProjectPaths(root).experiment(ddp_reference.name)
    wait_for(lambda: _training(root, job, exp, 2), timeout=300, what="the 2-node job training")
    jid = job_record(root, job)["engine"]["job_id"]
    shown = subprocess.run(["squeue", "-h", "-j", jid, "-o", "%D %N"], capture_output=True, text=True,
                           env={**os.environ, **env}).stdout.split()
    assert shown == ["2", "mlsn[1-2]"], shown  # Slurm placed it on both nodes
    said = run_cli(root, "MLSystem.submit", "--stop", job, check=True, env=cli_env(root, **env)).stdout
    assert f"scancel --signal=USR1 {jid}" in said, said  # sent once both tasks handle it
    assert _finish(runner, root) == 0
    stopped = job_record(root, job)
    assert (stopped["status"], stopped["exit_code"]) == ("stopped", 3), stopped
    assert 2 <= _segments(exp.dir)[0]["to_step"] < 8
    run_cli(root, "MLSystem.submit", "--requeue", job, check=True)
    assert _finish(_runner(root, *flags, **env), root) == 0
    assert [s["status"] for s in _segments(exp.dir)] == ["stopped", "complete"]
    _assert_same_run(exp.dir, ddp_reference, steps=8)  # both ranks: the same samples and weights


def test_a_multi_gpu_multi_node_job_asks_slurm_for_one_task_per_process(tmp_path):
    """``devices=4 num_nodes=2`` on GPUs: the sbatch lines the runner's submission produces."""
    from submitit.slurm.slurm import _make_sbatch_string

    from MLSystem.cluster_executor import SubmititExecutor
    from MLSystem.jobs import Job
    from MLSystem.launcher_config import LauncherConfig, slurm_parameters

    root = make_project(tmp_path / "proj")
    executor = SubmititExecutor("slurm", ProjectPaths(root), LauncherConfig(partition="gpu"))
    job = Job(id="job-1", kind="train", args=["dataset=digits", "model=mlp", "accelerator=gpu", "devices=4",
                                              "num_nodes=2"])
    devices, nodes, gpu = executor._resources(job)
    assert (devices, nodes, gpu) == (4, 2, True)
    params = slurm_parameters(executor.config, devices=devices, num_nodes=nodes, gpu=gpu)
    params.pop("array_parallelism")
    text = _make_sbatch_string(command="python -m x", folder=str(tmp_path), **params)
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --partition=gpu", "#SBATCH --signal=USR2@120"):
        assert line in text, text
