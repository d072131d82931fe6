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
import json
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


_SUMMARY_CACHE_VERSION = 1
# In-process copy of the summary cache: cache file path -> (its stamp, entries)
_summary_memo: dict[str, tuple[Any, dict[str, Any]]] = {}


def _stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return [st.st_ino, st.st_mtime_ns, st.st_size]


def list_experiments(paths: ProjectPaths) -> list[ExperimentSummary]:
    """Every experiment folder that has metadata, newest first.

    Reading 10,000 ``experiment.json`` + ``state.json`` files costs ~0.6 s; a summary cache in
    ``output/.cache/`` keyed by each file's inode, mtime and size makes a listing a matter of
    ``stat`` calls. Files are only ever replaced atomically (new inode), so a stale entry cannot
    survive a change. The cache is an optimisation only: unreadable or unwritable, it is rebuilt
    or skipped.
    """
    root = paths.experiments
    if not root.is_dir():
        return []
    cache_file = paths.output / ".cache" / "experiment-summaries.json"
    entries = _load_summary_cache(cache_file)
    fresh: dict[str, Any] = {}
    reread = 0
    with os.scandir(root) as it:
        for d in it:
            if not d.is_dir():
                continue
            meta_path, state_path = os.path.join(d.path, "experiment.json"), os.path.join(d.path, "state.json")
            stamp = [_stamp(meta_path), _stamp(state_path), os.path.exists(os.path.join(d.path, "checkpoints", "last.ckpt"))]
            if stamp[0] is None:
                continue
            entry = entries.get(d.name)
            if entry is None or entry["stamp"] != stamp:
                try:
                    meta = read_json(meta_path)
                    state = read_json(state_path) if stamp[2] else None
                except (OSError, ValueError):  # half-visible or corrupt: not listed this time
                    continue
                if not isinstance(meta, dict):
                    continue
                entry = {"stamp": stamp, "metadata": meta, "state": state}
                reread += 1
            fresh[d.name] = entry
    stale = reread + len(set(entries) - set(fresh))
    if stale:
        # A running job changes its state.json at every checkpoint: rewriting the whole cache
        # for that would put megabytes of writes on every listing. A few stale entries are
        # cheap to re-read, so the file is rewritten only once enough of it is out of date.
        _remember_summaries(cache_file, fresh, persist=not entries or stale >= max(20, len(fresh) // 100))
    out = [ExperimentSummary(eid, e["metadata"], e["state"]) for eid, e in fresh.items()]
    out.sort(key=lambda s: s.metadata.get("updated", ""), reverse=True)
    return out


def _load_summary_cache(file: Any) -> dict[str, Any]:
    stamp = _stamp(str(file))
    memo = _summary_memo.get(str(file))
    if memo and memo[0] == stamp:
        return memo[1]
    try:
        data = read_json(file) if stamp else None
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("version") != _SUMMARY_CACHE_VERSION:
        return {}
    entries = data.get("entries") or {}
    _summary_memo[str(file)] = (stamp, entries)
    return entries


def _remember_summaries(file: Any, entries: dict[str, Any], *, persist: bool) -> None:
    """Keep ``entries`` in memory (keyed by the cache file's current stamp) and, if ``persist``,
    write them to the cache file for other processes."""
    if persist:
        with contextlib.suppress(OSError):
            file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(file, json.dumps({"version": _SUMMARY_CACHE_VERSION, "entries": entries},
                                               separators=(",", ":"), default=str))
    _summary_memo[str(file)] = (_stamp(str(file)), entries)


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
    from MLSystem.hashing import diff_params, same_value

    mine = {**ident, "params": identity_values}
    selection_keys = ("dataset", "model", "adapter", "init_from")
    best: tuple[int, str, dict[str, Any]] | None = None
    for summary in list_experiments(paths):
        other = summary.metadata.get("identity") or {}
        if summary.id == exclude or other.get("model") != ident.get("model") or other.get("dataset") != ident.get("dataset"):
            continue
        theirs_params = {**other.get("params", {}), **summary.metadata.get("identity_values", {})}
        # Count differences cheaply; the readable diff is built for the winner only.
        n = sum(other.get(k) != ident.get(k) for k in selection_keys)
        n += sum(1 for k, v in theirs_params.items() if k in identity_values and not same_value(v, identity_values[k]))
        if best is None or n < best[0]:
            best = (n, summary.id, {**other, "params": {**identity_values, **theirs_params}})
    if best is None:
        return None
    return best[1], diff_params(best[2], mine)

