"""The scheduler and placement rules (pure: no processes): slots, GPU shares, the reservation that
keeps a big job from being starved, what a job needs from its params and the environment it gets."""

from __future__ import annotations

import pytest

from MLSystem import placement
from MLSystem.scheduler import Impossible, Need, Placement, Pool, Round, Waiting


def place_all(rnd: Round, needs: list[int]) -> list:
    return [rnd.offer(Need(n)) for n in needs]


def test_cpu_slots_fill_lowest_first_and_ignore_gpu_needs():
    rnd = Round(Pool(slots=2, threads=1), running=[Placement(0)])
    first, second = place_all(rnd, [2, 0])
    assert first == Placement(1, (), 1)  # CPU mode: no placement, a GPU job just takes a slot
    assert second == Waiting("all 2 slots are busy")


def test_gpu_jobs_spread_then_share_and_take_disjoint_gpus():
    pool = Pool(slots=4, gpus=("0", "1"), per_gpu=2)
    rnd = Round(pool)
    got = place_all(rnd, [1, 1, 1, 1, 1])
    assert [p.gpus for p in got[:4]] == [("0",), ("1",), ("0",), ("1",)]
    assert [p.slot for p in got[:4]] == [0, 1, 2, 3]
    assert isinstance(got[4], Waiting)
    one_each = Round(Pool(slots=4, gpus=("0", "1", "2", "3")))
    a, b, c = place_all(one_each, [2, 1, 1])
    assert a.gpus == ("0", "1") and b.gpus == ("2",) and c.gpus == ("3",)
    assert not set(a.gpus) & set(b.gpus) and not set(b.gpus) & set(c.gpus)


def test_busy_gpu_is_skipped_and_never_reserved():
    pool = Pool(slots=3, gpus=("0", "1", "2"))
    rnd = Round(pool, busy=["1"])
    a, b, c = place_all(rnd, [1, 1, 1])
    assert a.gpus == ("0",) and b.gpus == ("2",)
    assert isinstance(c, Waiting) and "busy outside the queue: 1" in c.reason


def test_big_job_reserves_gpus_so_small_jobs_cannot_starve_it():
    pool = Pool(slots=4, gpus=("0", "1", "2"))
    # GPU 0 runs a job; the head needs 3 GPUs: it waits and reserves all three.
    running = [Placement(0, ("0",))]
    rnd = Round(pool, running=running)
    big, small = place_all(rnd, [3, 1])
    assert isinstance(big, Waiting) and "reserved" in big.reason
    assert isinstance(small, Waiting)  # GPUs 1 and 2 are free but held for the big job
    # A CPU job behind it still uses a free slot.
    assert rnd.offer(Need(0)) == Placement(1, (), None)
    # Once the job on GPU 0 ends, the big job starts before anything behind it.
    rnd = Round(pool, running=[Placement(1)])
    assert rnd.offer(Need(3)) == Placement(0, ("0", "1", "2"), None)


def test_reservation_leaves_other_gpus_to_small_jobs():
    pool = Pool(slots=4, gpus=("0", "1", "2", "3"))
    rnd = Round(pool, running=[Placement(0, ("0",)), Placement(1, ("1",))])
    big, small, second_big = place_all(rnd, [3, 1, 2])
    assert isinstance(big, Waiting) and "GPUs 0,2,3 reserved" in big.reason
    assert small == Waiting("needs 1 GPU, 0 free")  # 2 and 3 free but reserved; 1 busy with a job
    assert isinstance(second_big, Waiting) and "reserved" not in second_big.reason  # one reservation
    # The job on GPU 1 ends: three GPUs are free, the big job (first in order) takes them.
    rnd = Round(pool, running=[Placement(0, ("0",))])
    assert rnd.offer(Need(3)) == Placement(1, ("1", "2", "3"), None)
    assert rnd.offer(Need(1)) == Waiting("needs 1 GPU, 0 free; GPU 0 reserved for it")


def test_starvation_free_over_a_stream_of_small_jobs():
    """Simulate: 2 GPUs, a 2-GPU job at the head of an endless stream of 1-GPU jobs. The big job
    starts as soon as the jobs that were running when it arrived have ended."""
    pool = Pool(slots=2, gpus=("0", "1"))
    running = {"a": Placement(0, ("0",)), "b": Placement(1, ("1",))}
    queue = ["big"] + [f"s{i}" for i in range(20)]
    needs = {"big": 2, **{f"s{i}": 1 for i in range(20)}}
    ended = ["a", "b"]
    started_big_at = None
    for tick in range(10):
        if ended and tick % 2 == 1:
            running.pop(ended.pop(0))  # one running job ends every other tick
        rnd = Round(pool, running=running.values())
        for job in list(queue):
            got = rnd.offer(Need(needs[job]))
            if isinstance(got, Placement):
                running[job] = got
                queue.remove(job)
                if job == "big":
                    started_big_at = tick
        if started_big_at is not None:
            break
    assert started_big_at == 3 and set(running) == {"big"}


def test_impossible_when_the_pool_is_too_small():
    got = Round(Pool(slots=2, gpus=("0",))).offer(Need(2))
    assert isinstance(got, Impossible) and got.reason == "needs 2 GPUs; this runner has 1 (--gpus 0)"


def test_pool_rejects_bad_sizes():
    with pytest.raises(ValueError, match="slots: must be >= 1"):
        Pool(slots=0)
    with pytest.raises(ValueError, match="listed twice"):
        Pool(slots=2, gpus=("0", "0"))


@pytest.mark.parametrize("accelerator, devices, need", [
    ("cpu", "auto", 0), ("mps", 4, 0), ("auto", "auto", 1), ("gpu", "2", 2), ("gpu", 2, 2),
    ("auto", "-1", 4), ("gpu", "[0, 1]", 2), ("gpu", "0,1,2", 3), ("gpu", "0", 0), ("cuda", "x", 1),
])
def test_gpu_need_from_lightning_values(accelerator, devices, need):
    assert placement.gpu_need(accelerator, devices, pool_gpus=4) == Need(need)


def test_fake_gpus_seam_and_discovery(monkeypatch):
    monkeypatch.setenv(placement.FAKE_GPUS_ENV, "4:busy=1,3")
    assert placement.discover_gpus("all") == ("0", "1", "2", "3")
    assert placement.discover_gpus("2,0") == ("2", "0")
    assert placement.busy_gpus(["0", "1", "2"]) == {"1"}
    with pytest.raises(placement.GpuError, match="GPU 7 not found; available: 0,1,2,3"):
        placement.discover_gpus("0,7")
    monkeypatch.setenv(placement.FAKE_GPUS_ENV, "lots")
    with pytest.raises(placement.GpuError, match="expected N or N:busy"):
        placement.discover_gpus("all")


def test_without_nvml_a_gpu_list_works_with_a_warning(monkeypatch):
    import builtins

    monkeypatch.delenv(placement.FAKE_GPUS_ENV, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    real_import = builtins.__import__

    def no_pynvml(name, *args, **kwargs):
        if name == "pynvml":
            raise ImportError("No module named 'pynvml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    warnings = []
    assert placement.discover_gpus("0,1", warn=warnings.append) == ("0", "1")
    assert "nvidia-ml-py is not installed" in warnings[0]
    with pytest.raises(placement.GpuError, match="--gpus all: cannot count the GPUs: nvidia-ml-py is not installed"):
        placement.discover_gpus("all")
    assert placement.busy_gpus(["0", "1"]) == set()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # e.g. inside a Slurm allocation
    assert placement.discover_gpus("all") == ("2", "3")


def test_job_env_and_thread_budget():
    env = placement.job_env(Placement(1, ("2", "3"), 4), gpu_mode=True)
    assert env["MLSYSTEM_SLOT"] == "1" and env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert env["OMP_NUM_THREADS"] == env["MLSYSTEM_THREADS"] == "4"
    cpu_job = placement.job_env(Placement(0, (), 1), gpu_mode=True)
    assert cpu_job["CUDA_VISIBLE_DEVICES"] == ""  # a CPU job in GPU mode cannot grab a GPU
    assert "CUDA_VISIBLE_DEVICES" not in placement.job_env(Placement(0), gpu_mode=False)
    assert placement.thread_budget(2, cpus=2) == 1 and placement.thread_budget(3, cpus=16) == 5
    assert placement.thread_budget(8, cpus=2) == 1


def test_nvml_counts_gpus_and_sees_foreign_processes(monkeypatch):
    """The NVML path with a stand-in ``pynvml`` (no GPU here): a GPU with a process that is not one
    of the queue's jobs is busy; GPUs named by UUID (CUDA_VISIBLE_DEVICES may hold those) work too."""
    import sys
    import types

    procs = {0: [], 1: [types.SimpleNamespace(pid=4242)], 2: [types.SimpleNamespace(pid=77)]}
    stub = types.SimpleNamespace(
        nvmlInit=lambda: None, nvmlDeviceGetCount=lambda: 3, nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetHandleByUUID=lambda uuid: {"GPU-1a2b": 1}[uuid],
        nvmlDeviceGetComputeRunningProcesses=lambda handle: procs[handle])
    monkeypatch.setitem(sys.modules, "pynvml", stub)
    monkeypatch.delenv(placement.FAKE_GPUS_ENV, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert placement.discover_gpus("all") == ("0", "1", "2")
    assert placement.busy_gpus(["0", "1", "2"], own_pids=[77]) == {"1"}  # pid 77 is one of our jobs
    assert placement.busy_gpus(["GPU-1a2b"]) == {"GPU-1a2b"}

    def no_driver():
        raise RuntimeError("NVML Shared Library Not Found")

    monkeypatch.setattr(stub, "nvmlInit", no_driver)
    with pytest.raises(placement.GpuError, match="cannot count the GPUs: NVML did not start \\(NVML Shared Library"):
        placement.discover_gpus("all")
