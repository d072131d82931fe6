"""Placement facts: which GPUs exist and are busy, what a job needs, and the environment a job gets.

* **GPUs** (:func:`discover_gpus`, :func:`busy_gpus`): read through NVML (``nvidia-ml-py``, module
  ``pynvml``), imported only when the runner is given ``--gpus``. ``--gpus 0,1`` uses those NVML
  indices (the order ``nvidia-smi`` shows; jobs get ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA agrees);
  ``--gpus all`` every GPU the runner may use (its own ``CUDA_VISIBLE_DEVICES`` if set, else all that
  NVML lists). A GPU on which a process outside the queue computes is *busy* and is skipped.
  Without ``nvidia-ml-py``: ``--gpus 0,1`` still places jobs but cannot see busy GPUs (a warning
  says so and every listed GPU counts as free); ``--gpus all`` needs it (or ``CUDA_VISIBLE_DEVICES``)
  to count the GPUs and otherwise fails with a one-line error naming the fix.
* **Test seam**: ``MLSYSTEM_FAKE_GPUS=N`` or ``N:busy=1,3`` declares N fake GPUs (ids ``0..N-1``), of
  which the listed ones are busy outside the queue; NVML is then not touched.
* **Need** (:func:`gpu_need`): from the merged ``accelerator`` and ``devices`` — CPU-type accelerators
  need no GPU; ``devices=auto`` one GPU; ``devices=N`` N; ``devices=-1`` all of the runner's GPUs;
  an index list (``[0,1]`` / ``0,1``) as many GPUs as it lists (the job sees them as ``0..k-1``).
* **Environment** (:func:`job_env`): ``MLSYSTEM_SLOT``, ``CUDA_VISIBLE_DEVICES`` (GPU mode only; a CPU
  job there gets an empty list so it cannot touch a GPU), and the thread budget ``OMP_NUM_THREADS``
  / ``MKL_NUM_THREADS`` / ``MLSYSTEM_THREADS``; :func:`apply_thread_budget` (called by the job
  process after importing torch) turns the latter into ``torch.set_num_threads``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from MLSystem.scheduler import Need, Placement, Pool

FAKE_GPUS_ENV = "MLSYSTEM_FAKE_GPUS"
SLOT_ENV = "MLSYSTEM_SLOT"
THREADS_ENV = "MLSYSTEM_THREADS"
GPUS_ENV = "MLSYSTEM_GPUS"  # the GPUs of a job as the runner names them (CUDA_VISIBLE_DEVICES is remapped)
_CPU_ACCELERATORS = {"cpu", "mps", "tpu", "hpu", "ipu", "xla"}


class GpuError(ValueError):
    """``--gpus`` cannot be honoured (unknown index, no way to count GPUs)."""


# -- what the machine has -----------------------------------------------------------------------------
def _fake() -> tuple[list[str], set[str]] | None:
    spec = os.environ.get(FAKE_GPUS_ENV, "").strip()
    if not spec:
        return None
    count, _, rest = spec.partition(":")
    try:
        n = int(count)
        busy = {b.strip() for b in rest.partition("busy=")[2].split(",") if b.strip()}
    except ValueError:
        raise GpuError(f"{FAKE_GPUS_ENV}={spec!r}: expected N or N:busy=i,j") from None
    return [str(i) for i in range(n)], busy


def _nvml():
    """``(pynvml, "")`` initialised, or ``(None, why not)`` when nvidia-ml-py or the driver is missing."""
    try:
        import pynvml
    except ImportError:
        return None, "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError: no driver / no GPU
        return None, f"NVML did not start ({exc})"
    return pynvml, ""


def available_gpus() -> list[str] | None:
    """GPU ids the runner may use (None: cannot tell — no NVML and no CUDA_VISIBLE_DEVICES)."""
    fake = _fake()
    if fake is not None:
        return fake[0]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    nvml, _ = _nvml()
    if nvml is None:
        return None
    return [str(i) for i in range(nvml.nvmlDeviceGetCount())]


def discover_gpus(spec: str | None, warn: Callable[[str], None] = print) -> tuple[str, ...]:
    """The runner's GPUs for ``--gpus`` (``all`` or ``0,1``); () for none."""
    if not spec:
        return ()
    known = available_gpus()
    if spec.strip().lower() == "all":
        if known is None:
            raise GpuError(f"--gpus all: cannot count the GPUs: {_nvml()[1]}; set CUDA_VISIBLE_DEVICES "
                           "or list them: --gpus 0,1")
        if not known:
            raise GpuError("--gpus all: no GPU found (NVML lists none); run without --gpus for CPU slots")
        return tuple(known)
    wanted = [g.strip() for g in spec.split(",") if g.strip()]
    if not wanted:
        raise GpuError(f"--gpus {spec!r}: expected 'all' or GPU indices such as 0,1")
    if len(set(wanted)) != len(wanted):
        raise GpuError(f"--gpus {spec}: a GPU is listed twice")
    if known is None:
        warn(f"warning: --gpus {spec}: {_nvml()[1]}, so GPUs busy outside the queue cannot be seen; "
             "every listed GPU counts as free")
    else:
        unknown = [g for g in wanted if g not in known]
        if unknown:
            raise GpuError(f"--gpus {spec}: GPU {','.join(unknown)} not found; available: {','.join(known) or 'none'}")
    return tuple(wanted)


def busy_gpus(gpus: Iterable[str], own_pids: Iterable[int] = ()) -> set[str]:
    """GPUs among ``gpus`` on which a process outside the queue computes (NVML; fake seam)."""
    gpus = list(gpus)
    fake = _fake()
    if fake is not None:
        return {g for g in gpus if g in fake[1]}
    if not gpus:
        return set()
    nvml, _ = _nvml()
    if nvml is None:
        return set()
    own = set(own_pids)
    busy = set()
    for g in gpus:
        try:
            handle = (nvml.nvmlDeviceGetHandleByUUID(g) if not g.isdigit()
                      else nvml.nvmlDeviceGetHandleByIndex(int(g)))
            procs = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except Exception:  # a GPU NVML cannot query: do not guess it busy
            continue
        if any(p.pid not in own for p in procs):
            busy.add(g)
    return busy


# -- what a job needs ---------------------------------------------------------------------------------
def gpu_need(accelerator: Any, devices: Any, pool_gpus: int) -> Need:
    """GPUs a job asks for through Lightning's ``accelerator`` / ``devices`` values."""
    if str(accelerator).strip().lower() in _CPU_ACCELERATORS:
        return Need(0)
    d = str(devices).strip().lower()
    if d in ("", "auto", "none"):
        return Need(1)
    if d.startswith("[") or "," in d:
        return Need(len([x for x in d.strip("[]").split(",") if x.strip()]))
    try:
        n = int(d)
    except ValueError:
        return Need(1)
    if n < 0:
        return Need(max(1, pool_gpus))
    return Need(n)


def need_from_params(params: dict[str, Any], pool_gpus: int) -> Need:
    return gpu_need(params.get("accelerator", "auto"), params.get("devices", "auto"), pool_gpus)


# -- what a job gets ----------------------------------------------------------------------------------
def thread_budget(slots: int, cpus: int | None = None) -> int:
    """CPU threads per job so that ``slots`` jobs do not oversubscribe the cores the runner may use."""
    if cpus is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, slots))


def job_env(placement: Placement, gpu_mode: bool) -> dict[str, str]:
    """Environment variables that put a job in its slot (merged over the runner's environment)."""
    env = {SLOT_ENV: str(placement.slot)}
    if gpu_mode:
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA numbers GPUs as NVML / nvidia-smi do
        env["CUDA_VISIBLE_DEVICES"] = ",".join(placement.gpus)
        env[GPUS_ENV] = ",".join(placement.gpus)
    if placement.threads:
        t = str(placement.threads)
        env.update(OMP_NUM_THREADS=t, MKL_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t)
        env[THREADS_ENV] = t
    return env


def apply_thread_budget() -> int | None:
    """In the job process: ``torch.set_num_threads`` from ``MLSYSTEM_THREADS`` (set by the runner).
    Returns the budget applied (None when the job was not given one)."""
    value = os.environ.get(THREADS_ENV)
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        return None
    if n < 1:
        return None
    import torch

    torch.set_num_threads(n)
    return n


def report_placement(out: Callable[[str], None] = print) -> None:
    """In the job process: apply the thread budget and say where the job runs (one log line)."""
    threads = apply_thread_budget()
    slot = os.environ.get(SLOT_ENV)
    if slot is None:
        return
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if GPUS_ENV in os.environ else None
    out(f"slot {slot}: torch uses {torch.get_num_threads()} CPU thread(s)"
        + (f" (budget {threads})" if threads else "")
        + (f", CUDA_VISIBLE_DEVICES={visible} (runner GPUs {os.environ[GPUS_ENV] or 'none'})"
           if visible is not None else ""))


# -- the runner's options -------------------------------------------------------------------------------
def build_pool(slots: int | None, gpus: str | None, slots_per_gpu: int, threads: int | None,
               warn=print) -> Pool:
    """The runner's pool from its options (one-line ``ValueError`` naming the option otherwise)."""
    if slots is not None and slots < 1:
        raise ValueError(f"--slots: must be >= 1, got {slots}")
    if slots_per_gpu < 1:
        raise ValueError(f"--slots-per-gpu: must be >= 1, got {slots_per_gpu}")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads: must be >= 1, got {threads}")
    found = discover_gpus(gpus, warn=warn)
    n = slots if slots is not None else (len(found) * slots_per_gpu if found else 1)
    # One slot keeps the job's own thread default (as before slots existed) unless --threads.
    budget = threads if threads is not None else (thread_budget(n) if n > 1 else None)
    return Pool(slots=n, gpus=found, per_gpu=slots_per_gpu, threads=budget)


def slot_args(slots: int | None = None, gpus: str | None = None, slots_per_gpu: int | None = None,
              threads: int | None = None) -> list[str]:
    """The runner's command-line options for these slot settings (for detached starts)."""
    args: list[str] = []
    for flag, value in (("--slots", slots), ("--gpus", gpus), ("--slots-per-gpu", slots_per_gpu),
                        ("--threads", threads)):
        if value not in (None, ""):
            args += [flag, str(value)]
    return args
