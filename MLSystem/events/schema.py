"""The event schema: one JSON object per event, the same on every transport.

::

    {"seq": 42, "type": "progress", "experiment_id": "55c158756c28", "job_id": "job-1a2b3c4d",
     "time": 1763800000.123, "timestamp": "2026-11-22T08:26:40.123+00:00", "source": "metrics",
     "payload": {"epoch": 1, "max_epochs": 2, "step": 40, "loss": 0.51, "lr": 0.003}}

``seq`` is global to the project and increases by one per event (see :mod:`MLSystem.events.journal`);
``time`` / ``timestamp`` say when the thing happened (a metrics row's own time, a job's start or
end), not when it was read. ``source`` names the file kind it was derived from. The payload of
each type is listed in :data:`PAYLOADS` (and in README.md's event table).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

# type -> payload fields (documentation, and the README table is generated from the same words)
PAYLOADS: dict[str, str] = {
    "queued": "kind, args, priority, held, action, dataset, model, attempt, note — the job entered pending/ "
              "(submitted, requeued, or put back after an interruption)",
    "started": "kind, args, attempt, pid, host — the runner spawned the job's process",
    "log": "message, and for 'training started': run_kind (new/resume/extend), step, epoch, max_epochs",
    "progress": "epoch (1-based, the one being trained), max_epochs, step (global), batch, batches, loss, lr "
                "— every log_every_n_steps steps (metrics.jsonl) and about once a second (progress.json)",
    "validation_result": "epoch (1-based, the epoch just validated), step, epoch_time, metrics "
                         "({val_loss, val_acc, val_wer, train_loss, …})",
    "samples": "epoch (1-based), step, samples ([{ref, hyp}, …]) — ASR transcripts of one validation",
    "status": "status (completed / stopped / interrupted), message — how the training run ended",
    "error": "message (the error line), detail (log tail), exit_code, signal — why the job failed",
    "finished": "attempt, exit_code, note, epochs_done — filed under finished/",
    "failed": "attempt, exit_code, signal, note — filed under failed/",
    "stopped": "attempt, note — filed under stopped/ (a graceful stop, or cancelled while pending)",
    "drained": "pending, held — the runner exited: nothing runnable is left (or a drain was asked)",
}
TYPES = tuple(PAYLOADS)
QUEUE_TYPES = ("queued", "started", "finished", "failed", "stopped", "drained")
# A control message, not an event (no seq): the stream skipped events (see broker.py).
GAP = "gap"


def error_line(text: str | None) -> str:
    """The line of a failed job's log tail that says what went wrong: the last ``error…`` line,
    else the last line."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lower().startswith("error")]
    return (errors or lines or ["failed"])[-1]


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def make(etype: str, t: float, payload: dict[str, Any], *, experiment_id: str | None = None,
         job_id: str | None = None, source: str = "queue") -> dict[str, Any]:
    """An event without its ``seq`` (the journal assigns it)."""
    assert etype in PAYLOADS, etype
    return {"type": etype, "experiment_id": experiment_id, "job_id": job_id, "time": round(float(t), 3),
            "timestamp": iso(t), "source": source, "payload": payload}


def dumps(event: dict[str, Any]) -> str:
    """One journal / wire line; ``seq`` first, so a reader can find it without parsing the rest."""
    ordered = {"seq": event["seq"], **{k: v for k, v in event.items() if k != "seq"}}
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)


def matches(event: dict[str, Any], experiment: str | None = None, job: str | None = None) -> bool:
    """Filter of the transports: a prefix of the experiment ID, a job id (or its hex part / prefix)."""
    if experiment and not str(event.get("experiment_id") or "").startswith(experiment):
        return False
    if job:
        jid = str(event.get("job_id") or "")
        if not (jid.startswith(job) or jid.startswith(f"job-{job}")):
            return False
    return True


def describe(event: dict[str, Any]) -> str:
    """One human-readable line (the CLI follower without ``--json``)."""
    p = event.get("payload") or {}
    t = event.get("timestamp", "")[11:23]
    who = " ".join(x for x in (event.get("job_id"), (event.get("experiment_id") or "")[:12]) if x)
    etype = event.get("type")
    if etype == "progress":
        text = f"epoch {p.get('epoch')}/{p.get('max_epochs') or '?'} step {p.get('step')}"
        if isinstance(p.get("loss"), (int, float)):
            text += f" loss {p['loss']:.4f}"
        if isinstance(p.get("lr"), (int, float)):
            text += f" lr {p['lr']:.3g}"
    elif etype == "validation_result":
        shown = " ".join(f"{k} {v:.4g}" for k, v in sorted((p.get("metrics") or {}).items())
                         if isinstance(v, (int, float)))
        text = f"epoch {p.get('epoch')} {shown}"
    elif etype == "samples":
        pairs = p.get("samples") or []
        text = f"epoch {p.get('epoch')}: {len(pairs)} transcripts"
        if pairs and isinstance(pairs[0], dict):
            text += f" (REF {pairs[0].get('ref', '')!r} HYP {pairs[0].get('hyp', '')!r})"
    elif etype in ("log", "status", "error"):
        text = (f"{p.get('status')}: " if etype == "status" else "") + str(p.get("message", ""))
    elif etype == "queued":
        text = " ".join(p.get("args") or [])
    elif etype == "drained":
        text = f"runner exited; {p.get('pending', 0)} pending, {p.get('held', 0)} held"
    else:
        text = str(p.get("note") or "")
    return f"{t} #{event.get('seq')} {etype:<17} {who}  {text}".rstrip()
