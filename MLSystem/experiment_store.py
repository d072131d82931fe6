"""The experiment folder ``output/experiments/{id}/``: the one reader and writer of its records.

* ``experiment.json`` — :class:`~MLSystem.records.ExperimentRecord`: selection, identity,
  created/updated, parent, code fingerprint, status, and one *segment* per training run
  (new / resume / extend) with its epoch range.
* ``state.json`` — :class:`~MLSystem.records.TrainingState`, written right after every
  checkpoint: trained epochs and global step, so the "already complete" decision needs neither
  torch nor the checkpoint.
* ``config.yaml`` — the resolved parameters, human-readable.
* ``.lease`` — a ``filelock`` held while a process trains the experiment; the kernel releases it
  when the holder dies, so a killed run never blocks the next one. ``.lease.owner`` says who.

A record that says "running" while nobody holds the lease belongs to a killed process: readers
see it as "interrupted" (:func:`live_status`). An ``experiment.json`` that cannot be parsed is
listed as "damaged" with the reason, never silently hidden.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import socket
from dataclasses import dataclass, replace
from typing import Any, Iterator

from MLSystem.errors import CorruptFileError, ExperimentBusyError, ExperimentNotFoundError, UnknownExperimentError
from MLSystem.paths import ExperimentPaths, ProjectPaths
from MLSystem.records import ExperimentRecord, ExperimentStatus, TrainingState
from MLSystem.utils.atomic import atomic_write_json, atomic_write_text, read_json
from MLSystem.utils.change_log import mark_changed
from MLSystem.utils.clock import now_iso
from MLSystem.utils.procs import pid_alive

_RECORD_ADVICE = ("restore it from a backup, or remove the experiment folder (its checkpoints stay usable "
                  "for warm starts if you copy them first)")
_STATE_ADVICE = "remove it: MLSystem rebuilds it from checkpoints/last.ckpt"


# -- experiment.json ---------------------------------------------------------------------------------
def read_record(exp: ExperimentPaths) -> ExperimentRecord | None:
    """``experiment.json`` as a record; None when there is none. A file that cannot be parsed
    raises :class:`CorruptFileError` naming it and what to do."""
    data = read_json(exp.metadata, advice=_RECORD_ADVICE)
    if data is None:
        return None
    try:
        return ExperimentRecord.from_json(data, exp.id)
    except (TypeError, ValueError) as exc:
        raise CorruptFileError(exp.metadata, f"not an experiment record ({exc})", _RECORD_ADVICE) from None


def write_record(exp: ExperimentPaths, record: ExperimentRecord) -> None:
    atomic_write_json(exp.metadata, record.to_dict())
    mark_changed(exp.dir)  # the query index re-reads this folder


def init_record(exp: ExperimentPaths, ident: dict[str, Any], identity_values: dict[str, Any],
                fingerprint: dict[str, str], parent: str | None) -> ExperimentRecord:
    """Create ``experiment.json`` if missing and return the record."""
    record = read_record(exp)
    if record is None:
        now = now_iso()
        record = ExperimentRecord(id=exp.id, dataset=ident["dataset"], model=ident["model"], adapter=ident["adapter"],
                                  identity=ident, identity_values=identity_values, parent=parent, created=now,
                                  updated=now, fingerprint=fingerprint)
        write_record(exp, record)
    return record


def update_record(exp: ExperimentPaths, **changes: Any) -> ExperimentRecord:
    """Change fields of ``experiment.json`` (``updated`` is set); unknown names are an error."""
    record = read_record(exp) or ExperimentRecord(id=exp.id)
    record = replace(record, **changes, updated=now_iso())
    write_record(exp, record)
    return record


def changed_fingerprint(record: ExperimentRecord, fingerprint: dict[str, str]) -> list[str]:
    """Names of the definitions whose code changed since the experiment was created."""
    old = record.fingerprint or {}
    return sorted(k for k, v in fingerprint.items() if old.get(k) not in (None, v))


# -- state.json ----------------------------------------------------------------------------------------
def read_state(exp: ExperimentPaths) -> TrainingState | None:
    """Training state saved with the last checkpoint, or None if there is no usable checkpoint.
    A garbled ``state.json`` raises :class:`CorruptFileError` (the checkpoint manager then reads
    the state from ``last.ckpt`` itself)."""
    data = read_json(exp.state, advice=_STATE_ADVICE)
    if data is None or not exp.last_ckpt.is_file():
        return None
    try:
        return TrainingState.from_json(data)
    except (TypeError, ValueError) as exc:
        raise CorruptFileError(exp.state, f"not a training state ({exc})", _STATE_ADVICE) from None


def trained_epochs(exp: ExperimentPaths) -> int:
    """Epochs completed so far according to ``state.json`` (0 without one, or with a garbled one);
    the runner records it around each job and the queue's ETAs start from it."""
    try:
        data = read_json(exp.state)
        return TrainingState.from_json(data).epochs_completed if data is not None else 0
    except (OSError, TypeError, ValueError):
        return 0


def write_state(exp: ExperimentPaths, state: TrainingState) -> None:
    atomic_write_json(exp.state, state.to_dict())
    mark_changed(exp.dir)


def write_resolved_config(exp: ExperimentPaths, selection: dict[str, Any], params: dict[str, Any],
                          sources: dict[str, str]) -> None:
    from omegaconf import OmegaConf  # keeps omegaconf off the listing paths that import this module

    header = ("# Resolved configuration of this experiment (written by MLSystem; editing it changes nothing).\n"
              "# 'sources' says where each value came from: a layer, config.yaml or a command-line override.\n")
    body = OmegaConf.to_yaml(OmegaConf.create({**selection, "params": params, "sources": sources}))
    atomic_write_text(exp.resolved_config, header + body)


# -- lease ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def lease(exp: ExperimentPaths, purpose: str = "train") -> Iterator[None]:
    """Hold the experiment's lease: only one process trains an experiment at a time."""
    from filelock import FileLock, Timeout

    exp.dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(exp.lease), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        owner = _lease_owner(exp) or {}
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


def _lease_owner(exp: ExperimentPaths) -> dict[str, Any] | None:
    try:
        owner = read_json(exp.lease_owner)
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and owner else None


def lease_holder(exp: ExperimentPaths, *, probe: bool = False) -> dict[str, Any] | None:
    """Who holds the experiment's lease now (``{"pid", "host", "since", "purpose"}``), or None.

    From ``.lease.owner``: a holder that ended normally removed it; one on this host whose pid is
    gone was killed. ``probe`` also tries the lock itself (only for the one process about to
    train: a probing reader could make a starting trainer see a busy lease)."""
    owner = _lease_owner(exp)
    if owner is None or (owner.get("host") == socket.gethostname() and not pid_alive(owner.get("pid"))):
        return None
    if probe:
        from filelock import FileLock, Timeout

        lock = FileLock(str(exp.lease), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return owner
        lock.release()  # a stale owner file: nobody holds it
        return None
    return owner


def live_status(exp: ExperimentPaths, record: ExperimentRecord) -> str:
    """The record's status, with "running" checked against the lease ("interrupted" when its
    process is gone, e.g. SIGKILLed: the record is repaired by the next run, not by readers)."""
    if record.status == ExperimentStatus.RUNNING and lease_holder(exp) is None:
        return ExperimentStatus.INTERRUPTED.value
    return record.status


@dataclass(frozen=True)
class ExperimentSummary:
    """One experiment of a listing: its record (status checked against the lease) and state."""

    id: str
    record: ExperimentRecord
    state: TrainingState | None

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def epochs_done(self) -> int:
        if self.state is not None:
            return self.state.epochs_completed
        return int(self.record.epochs_done or 0)


_SUMMARY_CACHE_VERSION = 1
# In-process copy of the summary cache: cache file path -> (its stamp, entries)
_summary_memo: dict[str, tuple[Any, dict[str, Any]]] = {}
# Typed summaries already built in this process: experiment folder -> (its stamp, summary)
_typed_memo: dict[tuple[str, str], tuple[Any, "ExperimentSummary"]] = {}


def forget_cached_listings() -> None:
    """Drop this process's in-memory copy of the listing cache (the next listing reads the cache
    file, as another process would)."""
    _summary_memo.clear()
    _typed_memo.clear()


def _stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return [st.st_ino, st.st_mtime_ns, st.st_size]


def list_experiments(paths: ProjectPaths) -> list[ExperimentSummary]:
    """Every experiment folder that has an ``experiment.json``, newest first.

    Reading 10,000 ``experiment.json`` + ``state.json`` files costs ~0.6 s; a summary cache in
    ``output/.cache/`` keyed by each file's inode, mtime and size makes a listing a matter of
    ``stat`` calls. Files are only ever replaced atomically (new inode), so a stale entry cannot
    survive a change. The cache is an optimisation only: unreadable or unwritable, it is rebuilt
    or skipped. An unparsable ``experiment.json`` is listed with status "damaged" and the reason.
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
                entry = {"stamp": stamp, "metadata": None, "state": None}
                try:
                    entry["metadata"] = read_json(meta_path)
                    if not isinstance(entry["metadata"], dict):
                        raise CorruptFileError(meta_path, "not a JSON object", _RECORD_ADVICE)
                except OSError as exc:  # unreadable (permissions): say so, do not cache it
                    fresh[d.name] = {"stamp": None, "problem": f"{meta_path}: cannot be read ({exc.strerror})"}
                    continue
                except ValueError as exc:
                    entry = {"stamp": stamp, "problem": str(exc)}
                if stamp[2] and "problem" not in entry:
                    with contextlib.suppress(OSError, ValueError):  # a garbled state.json: listed without it
                        entry["state"] = read_json(state_path)
                reread += 1
            fresh[d.name] = entry
    stale = reread + len(set(entries) - set(fresh))
    if stale:
        # A running job changes its state.json at every checkpoint: rewriting the whole cache
        # for that would put megabytes of writes on every listing. A few stale entries are
        # cheap to re-read, so the file is rewritten only once enough of it is out of date.
        cacheable = {k: v for k, v in fresh.items() if v.get("stamp") is not None}
        _remember_summaries(cache_file, cacheable, persist=not entries or stale >= max(20, len(fresh) // 100))
    # Thousands of new (acyclic) records would trigger full garbage collections that walk the
    # whole cache each time: a third of a 10,000-experiment listing. Collect once, afterwards.
    collect = gc.isenabled()
    gc.disable()
    try:
        out = [_summary(paths, eid, e) for eid, e in fresh.items()]
    finally:
        if collect:
            gc.enable()
    out.sort(key=lambda s: s.record.updated or "", reverse=True)
    return out


def _summary(paths: ProjectPaths, eid: str, entry: dict[str, Any]) -> ExperimentSummary:
    if "problem" in entry:
        return ExperimentSummary(eid, ExperimentRecord.damaged(eid, entry["problem"]), None)
    key = (str(paths.root), eid)
    typed = _typed_memo.get(key)
    if typed is None or typed[0] != entry["stamp"]:
        try:
            record = ExperimentRecord.from_json(entry["metadata"], eid)
        except (TypeError, ValueError) as exc:
            problem = f"{paths.experiment(eid).metadata}: {exc}"
            return ExperimentSummary(eid, ExperimentRecord.damaged(eid, problem), None)
        try:
            state = TrainingState.from_json(entry["state"]) if entry.get("state") is not None else None
        except (TypeError, ValueError):
            state = None
        typed = _typed_memo[key] = (entry["stamp"], ExperimentSummary(eid, record, state))
    summary = typed[1]
    if summary.record.status == ExperimentStatus.RUNNING:
        exp = paths.experiment(eid)
        summary = replace(summary, record=replace(summary.record, status=live_status(exp, summary.record)))
    return summary


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
        raise ExperimentNotFoundError(f"experiment id {prefix!r}: no such experiment (there are none yet in {root})")
    near = [n for n in names if n[0] == prefix[0]][:5] or names[:5]
    raise ExperimentNotFoundError(f"experiment id {prefix!r}: no such experiment in {root} "
                                 f"({len(names)} exist, e.g. {', '.join(near)})")
