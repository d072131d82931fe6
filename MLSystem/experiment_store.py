"""The experiment folder ``output/experiments/{id}/``: metadata, state, lease and lookups.

* ``experiment.json`` — selection, identity, created/updated, parent, code fingerprint, status,
  and one *segment* per training run (new / resume / extend) with its epoch range.
* ``state.json`` — written right after every checkpoint: trained epochs and global step, so the
  "already complete" decision needs neither torch nor the checkpoint.
* ``config.yaml`` — the resolved parameters, human-readable.
* ``.lease`` — a ``filelock`` held while a process trains the experiment; the kernel releases it
  when the holder dies, so a killed run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

from MLSystem.errors import ExperimentBusyError, UnknownExperimentError
from MLSystem.paths import ExperimentPaths, ProjectPaths
from MLSystem.utils.atomic import atomic_write_json, atomic_write_text, read_json

# Experiment statuses (experiment.json "status").
NEW, RUNNING, STOPPED, FAILED, COMPLETE = "new", "running", "stopped", "failed", "complete"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_metadata(exp: ExperimentPaths) -> dict[str, Any] | None:
    return read_json(exp.metadata)


def read_state(exp: ExperimentPaths) -> dict[str, Any] | None:
    """Training state saved with the last checkpoint, or None if there is no usable checkpoint."""
    state = read_json(exp.state)
    if state is None or not exp.last_ckpt.is_file():
        return None
    return state


def write_state(exp: ExperimentPaths, state: dict[str, Any]) -> None:
    atomic_write_json(exp.state, state)


def write_resolved_config(exp: ExperimentPaths, selection: dict[str, Any], params: dict[str, Any],
                          sources: dict[str, str]) -> None:
    from omegaconf import OmegaConf

    header = ("# Resolved configuration of this experiment (written by MLSystem; editing it changes nothing).\n"
              "# 'sources' says where each value came from: a layer, config.yaml or a command-line override.\n")
    body = OmegaConf.to_yaml(OmegaConf.create({**selection, "params": params, "sources": sources}))
    atomic_write_text(exp.resolved_config, header + body)


def init_metadata(exp: ExperimentPaths, ident: dict[str, Any], identity_values: dict[str, Any],
                  fingerprint: dict[str, str], parent: str | None) -> dict[str, Any]:
    """Create ``experiment.json`` if missing; on an existing one, warn if the code changed."""
    meta = read_metadata(exp)
    if meta is None:
        meta = {
            "id": exp.id,
            "dataset": ident["dataset"],
            "model": ident["model"],
            "adapter": ident["adapter"],
            "identity": ident,
            "identity_values": identity_values,  # every identity param, defaults included (for diffs)
            "parent": parent,
            "created": now_iso(),
            "updated": now_iso(),
            "fingerprint": fingerprint,
            "status": NEW,
            "segments": [],
        }
        atomic_write_json(exp.metadata, meta)
    return meta


def update_metadata(exp: ExperimentPaths, **changes: Any) -> dict[str, Any]:
    meta = read_metadata(exp) or {}
    meta.update(changes)
    meta["updated"] = now_iso()
    atomic_write_json(exp.metadata, meta)
    return meta


def changed_fingerprint(meta: dict[str, Any], fingerprint: dict[str, str]) -> list[str]:
    """Names of the definitions whose code changed since the experiment was created."""
    old = meta.get("fingerprint") or {}
    return sorted(k for k, v in fingerprint.items() if old.get(k) not in (None, v))


@contextlib.contextmanager
def lease(exp: ExperimentPaths, purpose: str = "train") -> Iterator[None]:
    """Hold the experiment's lease: only one process trains an experiment at a time."""
    from filelock import FileLock, Timeout

    exp.dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(exp.lease), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        owner = read_json(exp.lease_owner) or {}
        raise ExperimentBusyError(
            f"experiment {exp.id} is busy: {owner.get('purpose', 'training')} by pid {owner.get('pid', '?')} "
            f"on {owner.get('host', '?')} since {owner.get('since', '?')}"
        ) from None
    try:
        atomic_write_json(exp.lease_owner, {"pid": os.getpid(), "host": socket.gethostname(),
                                            "since": now_iso(), "purpose": purpose})
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(exp.lease_owner)
        lock.release()


@dataclass(frozen=True)
class ExperimentSummary:
    id: str
    metadata: dict[str, Any]
    state: dict[str, Any] | None


def list_experiments(paths: ProjectPaths) -> list[ExperimentSummary]:
    """Every experiment folder that has metadata, newest first."""
    out = []
    if not paths.experiments.is_dir():
        return out
    for d in paths.experiments.iterdir():
        exp = ExperimentPaths(d)
        meta = read_json(exp.metadata) if d.is_dir() else None
        if meta:
            out.append(ExperimentSummary(d.name, meta, read_state(exp)))
    out.sort(key=lambda s: s.metadata.get("updated", ""), reverse=True)
    return out


def resolve_id(paths: ProjectPaths, prefix: str) -> str:
    """Full experiment ID from a unique prefix (like git); a clear error listing candidates otherwise."""
    prefix = prefix.strip().lower()
    if not prefix or not all(c in "0123456789abcdef" for c in prefix):
        raise UnknownExperimentError(f"experiment id {prefix!r}: expected hexadecimal characters (e.g. 3f9c1a)")
    root = paths.experiments
    names = sorted(d.name for d in root.iterdir()) if root.is_dir() else []
    matches = [n for n in names if n.startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
        raise UnknownExperimentError(f"experiment id {prefix!r} is ambiguous: it matches {', '.join(matches[:10])}{more}; "
                                     "give more characters")
    if not names:
        raise UnknownExperimentError(f"experiment id {prefix!r}: no such experiment (there are none yet in {root})")
    near = [n for n in names if n[0] == prefix[0]][:5] or names[:5]
    raise UnknownExperimentError(f"experiment id {prefix!r}: no such experiment in {root} "
                                 f"({len(names)} exist, e.g. {', '.join(near)})")


def nearest_experiment(paths: ProjectPaths, ident: dict[str, Any], identity_values: dict[str, Any],
                       exclude: str | None = None) -> tuple[str, list[str]] | None:
    """The existing experiment whose identity differs least from ``ident``, and the differences
    (``lr: 0.001 -> 0.01``). Candidates share dataset and model; ties go to the most recent.
    """
    from MLSystem.hashing import diff_params

    mine = {**ident, "params": identity_values}
    best: tuple[int, str, list[str]] | None = None
    for summary in list_experiments(paths):
        other = summary.metadata.get("identity") or {}
        if summary.id == exclude or other.get("model") != ident.get("model") or other.get("dataset") != ident.get("dataset"):
            continue
        theirs = {**other, "params": {**identity_values, **other.get("params", {}),
                                      **summary.metadata.get("identity_values", {})}}
        diff = diff_params(theirs, mine)
        if best is None or len(diff) < best[0]:
            best = (len(diff), summary.id, diff)
    return (best[1], best[2]) if best else None

