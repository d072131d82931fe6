"""Webhooks when jobs end: the runner POSTs JSON (with a Slack/Mattermost ``text``) to each URL.

Configured in ``configs/notify.yaml`` and/or with ``python -m MLSystem.runner --notify URL``
(or ``$MLSYSTEM_NOTIFY``, one URL per line)::

    webhooks:
      - url: ${SLACK_WEBHOOK_URL}    # ${VAR} comes from the environment: keep tokens out of files
        events: [finished, failed, stopped, drained]   # the default
        headers: {Authorization: "Bearer ${HOOK_TOKEN}"}
        timeout: 5                   # seconds per attempt
        retries: 4                   # more attempts after the first, back-off 1, 2, 4, 8 s

Loaded through the runner's hook seam (:mod:`MLSystem.job_hooks`). Each notification is handed
to its own small sender process (:mod:`MLSystem.events.deliver`) through a pipe, so a slow,
failing or hanging receiver never delays or fails a job, and the last notifications still go out
(bounded by the retry schedule) when the runner exits right after the last job. URLs and headers
are secrets: they are passed on stdin (not argv), never printed, logged or served; messages name
only the receiver's host.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from MLSystem.events.schema import error_line
from MLSystem.paths import ProjectPaths

NOTIFY_ENV = "MLSYSTEM_NOTIFY"
EVENTS = ("finished", "failed", "stopped", "drained")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Webhook:
    url: str
    events: tuple[str, ...] = EVENTS
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 5.0
    retries: int = 4

    def __repr__(self) -> str:  # never show the URL (tokens) in a traceback or a log
        return f"Webhook({redact(self.url)}, events={list(self.events)})"


def redact(url: str) -> str:
    """``https://hooks.slack.com/…``: the receiver's host, without the path or query that hold tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…"


def _expand(text: str, where: str) -> str:
    def var(m: re.Match) -> str:
        if m.group(1) not in os.environ:
            raise ValueError(f"{where}: ${{{m.group(1)}}} is not set in the environment")
        return os.environ[m.group(1)]

    return _VAR.sub(var, text)


def _webhook(entry: Any, where: str) -> Webhook:
    if isinstance(entry, str):
        entry = {"url": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
        raise ValueError(f"{where}: expected a URL or a mapping with 'url'")
    unknown = set(entry) - {"url", "events", "headers", "timeout", "retries"}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (valid: url, events, headers, "
                         "timeout, retries)")
    url = _expand(entry["url"], f"{where}.url")
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise ValueError(f"{where}.url: expected an http(s) URL")
    events = entry.get("events", list(EVENTS))
    if not isinstance(events, list) or any(e not in EVENTS for e in events):
        raise ValueError(f"{where}.events: expected a list of {', '.join(EVENTS)}")
    headers = entry.get("headers") or {}
    if not isinstance(headers, dict):
        raise ValueError(f"{where}.headers: expected a mapping of header: value")
    timeout, retries = entry.get("timeout", 5.0), entry.get("retries", 4)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 60:
        raise ValueError(f"{where}.timeout: expected seconds in (0, 60]")
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        raise ValueError(f"{where}.retries: expected an integer 0-10")
    return Webhook(url, tuple(events), {str(k): _expand(str(v), f"{where}.headers.{k}") for k, v in headers.items()},
                   float(timeout), retries)


def load_webhooks(paths: ProjectPaths) -> list[Webhook]:
    """Webhooks of ``configs/notify.yaml`` plus ``$MLSYSTEM_NOTIFY``; errors name the entry, never a URL."""
    hooks = []
    config = paths.configs / "notify.yaml"
    if config.is_file():
        import yaml

        try:
            data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{config}: not valid YAML ({type(exc).__name__})") from None
        entries = data.get("webhooks") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ValueError(f"{config}: expected 'webhooks:' with a list of entries")
        hooks += [_webhook(e, f"{config.name}: webhooks[{i}]") for i, e in enumerate(entries)]
    for i, url in enumerate(u.strip() for u in os.environ.get(NOTIFY_ENV, "").splitlines()):
        if url:
            hooks.append(_webhook(url, f"--notify #{i + 1}"))
    return hooks


def message(event: str, job: Any = None, counts: dict[str, int] | None = None, project: str = "") -> dict[str, Any]:
    """The JSON body: Slack/Mattermost-compatible ``text`` plus the facts as fields."""
    host = socket.gethostname()
    if job is None:
        done = ", ".join(f"{n} {s}" for s, n in (counts or {}).items() if n) or "no jobs run"
        return {"text": f"MLSystem: runner on {host} ({project}) exited, queue drained: {done}",
                "event": "drained", "counts": counts or {}, "host": host, "project": project}
    what = "/".join(x for x in (job.dataset, job.model) if x) or job.kind
    exp = f" {job.experiment_id}" if job.experiment_id else ""
    head = {"finished": "finished", "failed": "FAILED", "stopped": "stopped"}[event]
    detail = job.note or ""
    if event == "failed" and job.error:
        detail = error_line(job.error)
    return {"text": f"MLSystem: {job.id} {head} ({what}{exp}) on {host}: {detail}".strip(),
            "event": event, "job_id": job.id, "experiment_id": job.experiment_id, "status": job.status,
            "kind": job.kind, "args": job.args, "attempt": job.attempts, "exit_code": job.exit_code,
            "signal": job.signal, "note": job.note, "error": (job.error or "")[-2000:] or None,
            "started": job.started, "ended": job.ended, "epochs_done": job.epochs_done, "host": host,
            "project": project}


class Notifier:
    """The runner hook: one sender process per (notification, webhook)."""

    def __init__(self, paths: ProjectPaths, webhooks: list[Webhook]):
        self.paths = paths
        self.webhooks = webhooks
        self.log = paths.queue / "logs" / "notify.log"
        self.senders: list[subprocess.Popen] = []

    def job_ended(self, job) -> None:
        if job.status in ("finished", "failed", "stopped"):
            self._send(job.status, message(job.status, job, project=self.paths.root.name))

    def queue_drained(self, counts: dict[str, int]) -> None:
        self._send("drained", message("drained", counts=counts, project=self.paths.root.name))

    def _send(self, event: str, body: dict[str, Any]) -> None:
        for hook in self.webhooks:
            if event not in hook.events:
                continue
            order = {"url": hook.url, "headers": hook.headers, "timeout": hook.timeout, "retries": hook.retries,
                     "body": body}
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log, "ab") as log:
                proc = subprocess.Popen([sys.executable, "-m", "MLSystem.events.deliver"], stdin=subprocess.PIPE,
                                        stdout=log, stderr=subprocess.STDOUT, cwd=self.paths.root,
                                        start_new_session=True)  # outlives the runner, ignores its Ctrl-C
            try:
                proc.stdin.write(json.dumps(order, default=str).encode())  # a few KiB: fits the pipe
                proc.stdin.close()
            except BrokenPipeError:
                pass
            # Reap it when it exits, so the runner keeps no zombies.
            threading.Thread(target=proc.wait, daemon=True, name=f"reap-notify-{proc.pid}").start()
            self.senders.append(proc)


def factory(paths: ProjectPaths) -> Notifier | None:
    """``job_hooks.FACTORIES`` entry: a notifier when webhooks are configured, else None."""
    hooks = load_webhooks(paths)
    return Notifier(paths, hooks) if hooks else None
