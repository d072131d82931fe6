"""Event stream benchmarks: ``python bench/bench_events.py [--rows 200] [--clients 1,50] [--repeats 2]``.

Runs a real cockpit (``python -m MLSystem.gui_start``) in a throw-away project copy and prints a
Markdown table:

* **latency**: a metrics row appended to a running job's ``metrics.jsonl`` (the row's own
  ``time``) -> the ``progress`` event received by WebSocket clients on ``/api/ws``; median and p95
  over every (row, client), with 1 and with 50 clients (all in one asyncio client process);
* **training cost**: steps/s of a real digits/cnn training run by the runner (``log_every_n_steps=1``:
  the most events a run can make), alone and with the cockpit deriving and 50 clients attached,
  and the CPU the cockpit process used meanwhile (what it takes from training on a shared machine);
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
TRAIN = ["dataset=digits", "model=cnn", "max_epochs=2", "n_train=8192", "n_val=256", "batch_size=32",
         "log_every_n_steps=1"]


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


def steps_per_s(root: Path, eid: str) -> float:
    """Training speed of the last run from its metrics rows (second epoch only: no start-up)."""
    rows = [json.loads(x) for x in (root / "output/experiments" / eid / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "event" not in r and r.get("kind") != "epoch" and r.get("epoch") == 1]
    return (steps[-1]["step"] - steps[0]["step"]) / (steps[-1]["time"] - steps[0]["time"])


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


def train_once(root: Path, seed: int) -> float:
    from MLSystem.submit import submit

    report = submit([*TRAIN, f"seed={seed}"])
    eid = report.queued[0]["experiment_id"]
    subprocess.run([sys.executable, "-m", "MLSystem.runner"], cwd=root, env=env_for(root), check=True,
                   stdout=subprocess.DEVNULL)
    return steps_per_s(root, eid)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--clients", default="1,50")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--history", type=int, default=20_000)
    args = parser.parse_args()
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
        # training cost: alternate alone / with cockpit + 50 clients, to spread the machine's noise
        alone, attached, cpu = [], [], []
        for r in range(args.repeats):
            alone.append(train_once(root, 100 + 2 * r))
            cockpit = Cockpit(root)
            clients = Clients(f"ws://127.0.0.1:{cockpit.port}/api/ws", 50)
            clients.ready.wait(60)
            time.sleep(2.0)
            try:
                c0, t0 = cpu_seconds(cockpit.proc.pid), time.monotonic()
                attached.append(train_once(root, 101 + 2 * r))
                cpu.append((cpu_seconds(cockpit.proc.pid) - c0) / (time.monotonic() - t0))
            finally:
                clients.done.set()
                cockpit.close()
            received = min(len(g) for g in clients.got)
        a, b = statistics.median(alone), statistics.median(attached)
        out.append(("training steps/s, digits/cnn, log_every_n_steps=1, no cockpit",
                    f"{a:.1f} ({', '.join(f'{x:.1f}' for x in alone)})", "-", "-"))
        out.append((f"... with the cockpit and 50 ws clients attached (each got >= {received} events)",
                    f"{b:.1f} ({', '.join(f'{x:.1f}' for x in attached)}); {b / a:.2f}x", ">= 0.95x",
                    "ok" if b / a >= 0.95 else "MISSED"))
        out.append(("CPU of the cockpit process meanwhile (deriving + 50 clients), share of one core",
                    ", ".join(f"{c:.1%}" for c in cpu), "-", "-"))
        per_poll, first = bench_history(root, args.history)
        out.append((f"derive poll with {args.history:,} finished jobs on disk (nothing changed)",
                    f"{per_poll * 1000:.2f} ms (first listing {first:.2f} s)", "<= 5 ms", "ok" if per_poll <= 0.005
                    else "MISSED"))
    print("| measurement | result | target | |\n|---|---|---|---|")
    for row in out:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
