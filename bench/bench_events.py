"""Event stream benchmarks::

    python bench/bench_events.py [--rows 200] [--clients 1,50] [--history 20000]
                                 [--rounds 10] [--window 15] [--threads 1] [--log-every 1] [--no-pin]

Runs a real cockpit (``python -m MLSystem.gui_start``) in a throw-away project copy and prints a
Markdown table:

* **latency**: a metrics row appended to a running job's ``metrics.jsonl`` (the row's own
  ``time``) -> the ``progress`` event received by WebSocket clients on ``/api/ws``; median and p95
  over every (row, client), with 1 and with 50 clients (all in one asyncio client process);
* **training cost**: one long digits/cnn training run by the runner (``--log-every 1``: the most
  events a run can make; ``--pin``: the training alone on CPU 0, the cockpit and the clients on the
  others, so that what is measured is the stream's effect on a step, not two programs sharing a
  core), measured in alternating windows — A: no cockpit, B: the cockpit
  deriving with 50 clients attached — in ABBA order (a drift of the machine's load cancels). Per
  window: wall steps/s and the training process's CPU seconds per step (utime + stime of its
  ``/proc`` entry: what the step itself costs, whatever else the machine runs; with ``--threads 1``,
  the default, no OpenMP spin-waiting inflates it). Reported: the geometric mean of the per-pair
  ratios B/A with a bootstrap 95 % interval ("ok" when it rules out a 5 % cost), and the CPU the
  cockpit process used meanwhile;
* **history**: one derivation poll with ``--history`` finished jobs in the queue (nothing changed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import env_for, make_project  # noqa: E402

TOKEN = "bench-token"
TRAIN = ["dataset=digits", "model=cnn", "max_epochs=2", "n_train=8192", "n_val=256", "batch_size=32"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cockpit:
    def __init__(self, root: Path):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "MLSystem.gui_start", "--port", str(self.port),
                                      "--token", TOKEN],
                                     cwd=root, env=env_for(root), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("cockpit did not start")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Clients(threading.Thread):
    """``n`` websocket clients in one asyncio loop; each records (receive time, event)."""

    def __init__(self, url: str, n: int):
        super().__init__(daemon=True)
        self.url, self.n = url, n
        self.got: list[list[tuple[float, dict]]] = [[] for _ in range(n)]
        self.ready = threading.Event()
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from websockets.asyncio.client import connect

        sockets = [await connect(self.url, max_size=None, additional_headers={"Authorization": f"Bearer {TOKEN}"})
                   for _ in range(self.n)]
        self.ready.set()

        async def read(i: int, ws) -> None:
            async for message in ws:
                self.got[i].append((time.time(), json.loads(message)))

        tasks = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets)]
        while not self.done.is_set():
            await asyncio.sleep(0.1)
        for t in tasks:
            t.cancel()
        for ws in sockets:
            await ws.close()


def fake_running_job(root: Path, eid: str) -> str:
    from MLSystem.jobs import Job, new_job_id
    from MLSystem.queue_store import JobQueue
    from MLSystem.utils.clock import now_iso
    from MLSystem.paths import ProjectPaths

    q = JobQueue(ProjectPaths.discover(root))
    jid = q.add(Job(id=new_job_id(), kind="train", args=["bench=1"], experiment_id=eid, created=now_iso())).id
    q.claim_next({"pid": os.getpid(), "host": "bench"})
    q.update_running(jid, pid=os.getpid(), started=now_iso(), epochs_before=0)
    return jid


def bench_latency(root: Path, port: int, n_clients: int, rows: int, eid: str) -> tuple[float, float, float]:
    from MLSystem.jobs import Status
    from MLSystem.queue_store import JobQueue
    from MLSystem.utils.clock import now_iso
    from MLSystem.paths import ProjectPaths

    clients = Clients(f"ws://127.0.0.1:{port}/api/ws?experiment={eid}", n_clients)
    clients.ready.wait(60)
    jid = fake_running_job(root, eid)
    time.sleep(1.0)
    metrics = root / "output" / "experiments" / eid / "metrics.jsonl"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    with open(metrics, "a") as fh:
        fh.write(json.dumps({"event": "new", "step": 0, "epoch": 0, "max_epochs": 1, "time": time.time()}) + "\n")
        fh.flush()
        for step in range(1, rows + 1):
            fh.write(json.dumps({"step": step, "epoch": 0, "loss": 1.0, "lr": 0.1,
                                 "time": round(time.time(), 3)}) + "\n")
            fh.flush()
            time.sleep(0.05)  # 20 logged steps/s
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(
            sum(e["type"] == "progress" for _, e in got) >= rows for got in clients.got):
        time.sleep(0.1)
    clients.done.set()
    q = JobQueue(ProjectPaths.discover(root))
    q.complete(q.running(jid), Status.FINISHED, ended=now_iso(), exit_code=0, note="bench")
    lat = sorted(t - e["time"] for got in clients.got for t, e in got if e["type"] == "progress")
    missing = n_clients * rows - len(lat)
    return statistics.median(lat), lat[int(0.95 * (len(lat) - 1))], missing


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_history(root: Path, n: int) -> tuple[float, float]:
    """(seconds per idle poll, seconds for the first poll) with n finished jobs on disk."""
    from MLSystem.events.derive import Deriver
    from MLSystem.jobs import Job, QueuePaths, Status, new_job_id
    from MLSystem.utils.clock import now_iso
    from MLSystem.paths import ProjectPaths
    from MLSystem.utils.atomic import atomic_write_text

    paths = ProjectPaths.discover(root)
    folder = QueuePaths(paths.queue).dir(Status.FINISHED)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        job = Job(id=new_job_id(), kind="train", args=[f"seed={i}"], status="finished", created=now_iso(),
                  ended=now_iso(), history=[{"attempt": 1, "outcome": "finished"}])
        (folder / f"{job.id}.json").write_text(json.dumps(job.to_dict()))
    deriver = Deriver(paths)
    t0 = time.perf_counter()
    deriver.baseline()
    first = time.perf_counter() - t0
    deriver.poll()  # the second listing each change gets
    t0 = time.perf_counter()
    for _ in range(20):
        deriver.poll()
    return (time.perf_counter() - t0) / 20, first


def last_step(metrics: Path) -> int:
    """The global step of the newest step row (the step the training process finished last)."""
    with open(metrics, "rb") as fh:
        fh.seek(max(0, os.fstat(fh.fileno()).st_size - 8192))
        lines = fh.read().splitlines()[1:]
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if "event" not in row and row.get("kind") != "epoch" and isinstance(row.get("step"), int):
            return row["step"]
    raise RuntimeError(f"no step row at the end of {metrics}")


def window(metrics: Path, pid: int, seconds: float) -> tuple[float, float]:
    """(wall steps/s, training-process CPU seconds per step) over the next ``seconds``."""
    c0, t0, s0 = cpu_seconds(pid), time.monotonic(), last_step(metrics)
    time.sleep(seconds)
    c1, t1, s1 = cpu_seconds(pid), time.monotonic(), last_step(metrics)
    return (s1 - s0) / (t1 - t0), (c1 - c0) / (s1 - s0)


def ratio_ci(ratios: list[float], n: int = 10_000) -> tuple[float, float, float]:
    """Geometric mean of per-pair ratios and a bootstrap 95 % interval of it."""
    import math
    import random

    logs = [math.log(r) for r in ratios]
    rng = random.Random(0)
    means = sorted(statistics.fmean(rng.choices(logs, k=len(logs))) for _ in range(n))
    return math.exp(statistics.fmean(logs)), math.exp(means[int(0.025 * n)]), math.exp(means[int(0.975 * n) - 1])


def verdict(ci: tuple[float, float, float], slower_if_below: bool, margin: float = 0.05) -> str:
    """'ok' when the interval rules out a cost above ``margin``, 'MISSED' when it shows one,
    'inconclusive' when it can do neither (too noisy)."""
    _, lo, hi = ci
    if slower_if_below:  # steps/s: a cost is a ratio below 1
        lo, hi = 1 / hi, 1 / lo
    if hi <= 1 + margin:
        return f"ok (< {margin:.0%} at 95 %)"
    return "MISSED" if lo > 1 + margin else "inconclusive"


def bench_step_cost(root: Path, rounds: int, seconds: float, threads: int, log_every: int, pin: bool) -> dict:
    """Interleaved A (no cockpit) / B (cockpit + 50 clients) windows over one training run."""
    from MLSystem.paths import ProjectPaths
    from MLSystem.queue_store import JobQueue
    from MLSystem.submit import submit

    # long epochs: few validation and checkpoint pauses inside the windows
    report = submit([*TRAIN, "n_train=65536", "max_epochs=50", "seed=7", f"log_every_n_steps={log_every}"])
    jid, eid = report.queued[0]["job"], report.queued[0]["experiment_id"]
    q = JobQueue(ProjectPaths.discover(root))
    runner = subprocess.Popen([sys.executable, "-m", "MLSystem.runner", "--threads", str(threads)], cwd=root,
                              env=env_for(root), preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if pin else None,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = root / "output/experiments" / eid / "metrics.jsonl"
    out: dict = {"A": [], "B": [], "cockpit_cpu": [], "events": []}
    try:
        while not (metrics.exists() and metrics.stat().st_size > 8192):  # past start-up
            time.sleep(0.5)
        pid = q.running(jid).pid
        for r in range(rounds):
            for phase in ("AB" if r % 2 == 0 else "BA"):
                if phase == "A":
                    out["A"].append(window(metrics, pid, seconds))
                    continue
                cockpit = Cockpit(root)
                clients = Clients(f"ws://127.0.0.1:{cockpit.port}/api/ws", 50)
                try:
                    clients.ready.wait(60)
                    time.sleep(3.0)  # the cockpit's start-up is not what is measured
                    c0, t0, n0 = cpu_seconds(cockpit.proc.pid), time.monotonic(), sum(map(len, clients.got))
                    out["B"].append(window(metrics, pid, seconds))
                    out["cockpit_cpu"].append((cpu_seconds(cockpit.proc.pid) - c0) / (time.monotonic() - t0))
                    out["events"].append(sum(map(len, clients.got)) - n0)
                finally:
                    clients.done.set()
                    cockpit.close()
                time.sleep(2.0)  # its exit is not measured either
    finally:
        q.request_stop(jid)
        try:
            runner.wait(timeout=120)
        except subprocess.TimeoutExpired:
            runner.kill()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--clients", default="1,50")
    parser.add_argument("--rounds", type=int, default=10, help="A/B pairs")
    parser.add_argument("--window", type=float, default=15.0, help="seconds per A or B window")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training (runner --threads)")
    parser.add_argument("--log-every", type=int, default=1, help="log_every_n_steps of the training (1: most events)")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                        help="training on CPU 0, this process and the cockpit on the others (Linux, >= 2 CPUs)")
    parser.add_argument("--history", type=int, default=20_000)
    args = parser.parse_args()
    args.pin = args.pin and hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
    if args.pin:  # the cockpits this process starts inherit it
        os.sched_setaffinity(0, os.sched_getaffinity(0) - {0})
    with tempfile.TemporaryDirectory(prefix="mlsystem-bench-events-") as tmp:
        root = make_project(Path(tmp) / "proj")
        os.environ["MLSYSTEM_ROOT"] = str(root)
        os.chdir(root)
        out = []
        cockpit = Cockpit(root)
        try:
            for i, n in enumerate(int(x) for x in args.clients.split(",")):
                med, p95, missing = bench_latency(root, cockpit.port, n, args.rows, f"bench{i:07d}")
                out.append((f"metric row written -> event received, {n} client(s) ({args.rows} rows at 20/s)",
                            f"median {med:.3f} s, p95 {p95:.3f} s" + (f", {missing} missing" if missing else ""),
                            "<= 0.5 s", "ok" if p95 <= 0.5 and not missing else "MISSED"))
        finally:
            cockpit.close()
        cost = bench_step_cost(root, args.rounds, args.window, args.threads, args.log_every, args.pin)
        pairs = list(zip(cost["A"], cost["B"]))
        rate = ratio_ci([b[0] / a[0] for a, b in pairs])
        cpu = ratio_ci([b[1] / a[1] for a, b in pairs])
        a_rate, b_rate = statistics.median(x[0] for x in cost["A"]), statistics.median(x[0] for x in cost["B"])
        a_cpu, b_cpu = statistics.median(x[1] for x in cost["A"]), statistics.median(x[1] for x in cost["B"])
        what = (f"{len(pairs)} A/B pairs of {args.window:.0f} s windows, ABBA order, one run, "
                f"{args.threads} torch thread(s)" + (", training on CPU 0, cockpit and clients on the others"
                                                     if args.pin else ", no pinning"))
        out.append((f"training steps/s, digits/cnn, log_every_n_steps={args.log_every}: A no cockpit / B cockpit + 50 ws clients "
                    f"({what})", f"A {a_rate:.2f}, B {b_rate:.2f} (medians); B/A {rate[0]:.3f} [95% CI {rate[1]:.3f}, "
                    f"{rate[2]:.3f}]", "no measurable change", verdict(rate, slower_if_below=True)))
        out.append(("training process CPU per step (utime+stime), same windows",
                    f"A {a_cpu * 1000:.2f} ms, B {b_cpu * 1000:.2f} ms (medians); B/A {cpu[0]:.3f} [95% CI {cpu[1]:.3f}, "
                    f"{cpu[2]:.3f}]", "no measurable change", verdict(cpu, slower_if_below=False)))
        out.append(("CPU of the cockpit process in the B windows (deriving + 50 clients), share of one core",
                    f"median {statistics.median(cost['cockpit_cpu']):.1%} "
                    f"({statistics.median(cost['events']) / args.window:.0f} events/s delivered)", "-", "-"))
        per_poll, first = bench_history(root, args.history)
        out.append((f"derive poll with {args.history:,} finished jobs on disk (nothing changed)",
                    f"{per_poll * 1000:.2f} ms (first listing {first:.2f} s)", "<= 5 ms", "ok" if per_poll <= 0.005
                    else "MISSED"))
    print("| measurement | result | target | |\n|---|---|---|---|")
    for row in out:
        print("| " + " | ".join(row) + " |")
    print("\nper pair (A then B): steps/s " + "; ".join(f"{a[0]:.1f} {b[0]:.1f}" for a, b in pairs))
    print("per pair (A then B): CPU ms/step " + "; ".join(f"{a[1] * 1000:.2f} {b[1] * 1000:.2f}" for a, b in pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
