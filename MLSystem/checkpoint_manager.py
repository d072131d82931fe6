"""Checkpoints of one experiment: where they are, what they hold, what to do next, how to save.

* :func:`decide` compares the trained epochs with ``max_epochs`` and answers new / resume /
  extend / complete from ``state.json`` alone (no torch) when it can. A missing or damaged
  ``last.ckpt`` falls back to the newest readable ``epoch-NNNN.ckpt`` (and says so); with none
  readable, an experiment that has trained before is refused rather than silently restarted
  (:class:`DamagedExperimentError`; ``execute_train --restart`` moves its history aside).
* :class:`AtomicCheckpointIO` makes every checkpoint write atomic and records ``state.json``
  right after ``last.ckpt``, so a kill mid-save never leaves a corrupt ``last.ckpt``.
* :func:`checkpoint_callbacks` builds Lightning's ``ModelCheckpoint`` callbacks: one file per
  epoch (``epoch-0003.ckpt`` = after 3 epochs) plus ``last.ckpt``, mid-epoch ``last.ckpt``
  saves every N steps / minutes so a SIGKILL loses little, and ``best.ckpt`` when the params
  name a ``best_metric`` (common layer; e.g. the conformer redeclares ``best_metric = "val_cer"``), in
  the direction :mod:`MLSystem.utils.metric_mode` gives it.
"""

from __future__ import annotations

import logging
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from MLSystem.errors import BadInputError, CorruptFileError, NotFoundError
from MLSystem.experiment_store import read_state, write_state
from MLSystem.paths import ExperimentPaths
from MLSystem.records import STATE_KEY, Action, TrainingState
from MLSystem.utils.atomic import atomic_write
from MLSystem.utils.clock import iso_time
from MLSystem.utils.metric_mode import declared_modes, metric_mode

# The decision vocabulary is records.Action; these names stay for readability at call sites.
NEW, RESUME, EXTEND, COMPLETE = Action.NEW, Action.RESUME, Action.EXTEND, Action.COMPLETE
log = logging.getLogger("MLSystem.checkpoints")
LAST = "last.ckpt"
BEST = "best.ckpt"
_EPOCH_FILE = re.compile(r"epoch-(\d+)\.ckpt$")


class DamagedExperimentError(BadInputError):
    """An experiment that has trained before but has no readable checkpoint to resume from."""


@dataclass(frozen=True)
class Decision:
    """What ``execute_train`` will do for an experiment, and why (one line)."""

    action: str  # NEW | RESUME | EXTEND | COMPLETE
    epochs_done: int
    max_epochs: int
    global_step: int
    mid_epoch: bool
    ckpt_path: Path | None
    experiment_id: str
    fallback: str = ""  # why ckpt_path is not last.ckpt (it was missing or damaged)

    @property
    def message(self) -> str:
        eid = self.experiment_id
        if self.action == NEW:
            return f"new experiment {eid}"
        note = f" ({self.fallback})" if self.fallback else ""
        if self.action == COMPLETE:
            return f"{eid} already complete ({self.epochs_done}/{self.max_epochs} epochs){note}"
        if self.action == EXTEND:
            return f"extending {eid}: {self.epochs_done} -> {self.max_epochs} epochs{note}"
        if self.mid_epoch:
            return (f"resuming {eid} mid-epoch {self.epochs_done + 1} of {self.max_epochs} epochs "
                    f"(global step {self.global_step}){note}")
        return f"resuming {eid} after epoch {self.epochs_done} of {self.max_epochs} epochs{note}"


def training_state(exp: ExperimentPaths) -> TrainingState | None:
    """``state.json``, or (old, hand-copied or garbled ``state.json``) the state read from ``last.ckpt``."""
    try:
        state = read_state(exp)
    except CorruptFileError as exc:
        note = f"warning: {exc.path}: {exc.problem}; reading the training state from {exp.last_ckpt.name} instead"
        print(note, file=sys.stderr)
        log.warning(note)
        state = None
    if state is None and exp.last_ckpt.is_file():
        state = _state_from_checkpoint(exp.last_ckpt)
    return state


def unusable(path: Path, *, thorough: bool = True) -> str | None:
    """Why a checkpoint file cannot be resumed from (missing, truncated, corrupt), or None.

    A checkpoint is a zip archive (``torch.save``): opening it reads the central directory at its
    end (catches truncation and garbage, a few small reads); ``thorough`` also checks every
    entry's CRC (reads the whole file). Neither needs torch.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip() if thorough else None
    except FileNotFoundError:
        return "missing"
    except zipfile.BadZipFile as exc:
        return f"damaged ({exc}; truncated by a full disk or a copy?)"
    except (OSError, EOFError, ValueError, RuntimeError) as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"
    return f"corrupt (entry {bad} fails its CRC check)" if bad else None


def epoch_checkpoints(exp: ExperimentPaths) -> list[tuple[int, Path]]:
    """``(epochs done, path)`` of the per-epoch checkpoint files, newest first."""
    if not exp.checkpoints.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in exp.checkpoints.iterdir() if (m := _EPOCH_FILE.fullmatch(p.name))]
    return sorted(found, reverse=True)


def _trained_an_epoch(exp: ExperimentPaths) -> bool:
    """Whether the metrics log records a finished epoch (so a checkpoint existed and is gone)."""
    try:
        with open(exp.metrics, "rb") as fh:
            return any(b'"kind":"epoch"' in line for line in fh)
    except OSError:
        return False


def resume_point(exp: ExperimentPaths, *, verify: bool = False) -> tuple[TrainingState | None, Path | None, str]:
    """``(state, checkpoint, fallback note)`` to continue from; ``(None, None, "")`` for a new experiment.

    ``verify`` checks the checkpoint's CRCs (reads it once; done before training). Without it, only
    the zip directory of ``last.ckpt`` is checked (no torch: the cheap "already complete" path).
    Raises :class:`DamagedExperimentError` when the experiment has trained before (``state.json``,
    epoch files or a finished epoch in ``metrics.jsonl``) but no checkpoint can be read.
    """
    last = exp.last_ckpt
    if last.is_file():
        why = unusable(last, thorough=verify)
        if why is None:
            state = training_state(exp)
            if state is not None:
                return state, last, ""
            why = "unreadable"
        problem = f"{LAST} is {why}"
    elif exp.state.is_file() or epoch_checkpoints(exp) or _trained_an_epoch(exp):
        problem = f"{LAST} is missing"
    else:
        return None, None, ""
    skipped = []
    for _, path in epoch_checkpoints(exp):
        why = unusable(path)
        state = _state_from_checkpoint(path) if why is None else None
        if state is not None:
            return state, path, f"{problem}; using {path.name}" + (f" ({'; '.join(skipped)})" if skipped else "")
        skipped.append(f"{path.name} {why or 'unreadable'}")
    raise DamagedExperimentError(
        f"experiment {exp.id}: {problem} and no epoch checkpoint is readable"
        + (f" ({'; '.join(skipped)})" if skipped else "")
        + f"; its history in {exp.dir} is left as it is. To train it from scratch, run "
          "python -m MLSystem.execute_train with the same overrides plus --restart "
          "(the old checkpoints and metrics are moved to a replaced-* folder)")


def decide(exp: ExperimentPaths, max_epochs: int, *, verify: bool = False) -> Decision:
    """New / resume / extend / complete for ``max_epochs``, without torch when ``state.json`` exists
    (``verify``: check the checkpoint's integrity and fall back to an older one; see :func:`resume_point`)."""
    state, ckpt, fallback = resume_point(exp, verify=verify)
    if state is None:
        return Decision(NEW, 0, max_epochs, 0, False, None, exp.id)
    done, step, mid = state.epochs_completed, state.global_step, state.mid_epoch
    target_then = int(state.max_epochs if state.max_epochs is not None else max_epochs)
    if done >= max_epochs:
        action = COMPLETE
    elif not mid and done >= target_then:
        action = EXTEND  # the previous run reached its own target; more epochs were asked for
    else:
        action = RESUME
    return Decision(action, done, max_epochs, step, mid and action != COMPLETE, ckpt, exp.id, fallback)


@dataclass(frozen=True)
class CheckpointInfo:
    name: str
    path: Path
    epochs_done: int | None
    size: int
    modified: str


def list_checkpoints(exp: ExperimentPaths) -> list[CheckpointInfo]:
    """Per-epoch checkpoints in epoch order, then ``last.ckpt``; sizes and times from the file system."""
    if not exp.checkpoints.is_dir():
        return []
    out = []
    try:
        state = read_state(exp)
    except CorruptFileError:
        state = None
    for p in exp.checkpoints.glob("*.ckpt"):
        m = _EPOCH_FILE.search(p.name)
        if m:
            epochs = int(m.group(1))
        elif p.name == LAST:
            epochs = state.epochs_completed if state else None
        else:
            epochs = None
        st = p.stat()
        when = iso_time(st.st_mtime)
        out.append(CheckpointInfo(p.stem, p, epochs, st.st_size, when))
    # epoch files in order, then best (its epoch is only inside the file), then last
    out.sort(key=lambda c: (c.name == "last", c.name == "best", c.epochs_done or 0, c.name))
    return out


def find_checkpoint(exp: ExperimentPaths, name: str | None) -> Path:
    """``last.ckpt`` or the named checkpoint (``epoch-0003`` or ``epoch-0003.ckpt``); clear error if absent."""
    if not name:
        if exp.last_ckpt.is_file():
            return exp.last_ckpt
        raise NotFoundError(f"experiment {exp.id} has no checkpoint yet")
    if "/" in name or "\\" in name or name.startswith("."):
        raise BadInputError(f"checkpoint {name!r}: expected a file name such as epoch-0003 or last")
    path = exp.checkpoints / (name if name.endswith(".ckpt") else f"{name}.ckpt")
    if not path.is_file():
        have = ", ".join(c.name for c in list_checkpoints(exp)) or "none"
        raise NotFoundError(f"checkpoint {name!r} not found in experiment {exp.id} (available: {have})")
    return path


def _state_from_checkpoint(path: Path) -> TrainingState | None:
    import torch  # only for checkpoints without state.json: the usual decision stays torch-free

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        return None
    if STATE_KEY in ckpt:
        return TrainingState.from_json(dict(ckpt[STATE_KEY]))
    # A plain Lightning checkpoint: assume it was saved at an epoch end.
    return TrainingState(epochs_completed=int(ckpt.get("epoch", -1)) + 1, global_step=int(ckpt.get("global_step", 0)))


def _checkpoint_io_class():
    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        """Atomic writes (temp + fsync + rename); ``state.json`` follows every ``last.ckpt``."""

        def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
            import torch


            path = Path(path)
            atomic_write(path, lambda fh: _save(torch, checkpoint, fh))
            if path.name == LAST and STATE_KEY in checkpoint:
                state = TrainingState.from_json(dict(checkpoint[STATE_KEY], checkpoint=LAST))
                write_state(ExperimentPaths(path.parent.parent), state)

    return AtomicCheckpointIO


class _WriteRecorder:
    """A file wrapper that remembers the first OSError of a write: torch's zip writer reports a
    failed write (a full disk) only as "unexpected pos … vs …"."""

    def __init__(self, fh):
        self._fh = fh
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self._fh.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def __getattr__(self, name: str):
        return getattr(self._fh, name)


def _save(torch, checkpoint: dict[str, Any], fh) -> None:
    recorder = _WriteRecorder(fh)
    try:
        torch.save(checkpoint, recorder)
    except Exception as exc:
        if recorder.error is not None:
            raise recorder.error from exc
        raise


def atomic_checkpoint_io():
    """A Lightning ``CheckpointIO`` plugin instance (pass in ``Trainer(plugins=[...])``)."""
    return _checkpoint_io_class()()


def checkpoint_callbacks(exp: ExperimentPaths, params: dict[str, Any],
                         metric_modes: dict[str, str] | None = None) -> list:
    """Lightning ``ModelCheckpoint`` callbacks for per-epoch files, ``last.ckpt`` and mid-epoch saves,
    and ``best.ckpt`` for ``best_metric`` (``metric_modes``: the definition's declared directions)."""
    from datetime import timedelta

    from pytorch_lightning.callbacks import ModelCheckpoint

    class EpochCheckpoint(ModelCheckpoint):
        # Name files by epochs *completed* (1-based), which is what users count.
        def _monitor_candidates(self, trainer):
            import torch

            candidates = super()._monitor_candidates(trainer)
            candidates["epochs_done"] = torch.tensor(trainer.current_epoch + 1)
            return candidates

    class MidEpochCheckpoint(ModelCheckpoint):
        # Never at an epoch's last batch: Lightning restores such a checkpoint as "epoch not
        # finished, batches all done" and trains one extra epoch. The epoch-end save follows anyway.
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if batch_idx + 1 < trainer.num_training_batches:
                super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    keep = int(params.get("keep_epoch_checkpoints", -1))
    epoch_kwargs: dict[str, Any] = {"save_top_k": -1}
    if keep >= 0:
        epoch_kwargs = {"save_top_k": keep, "monitor": "step", "mode": "max"}
    callbacks = [
        EpochCheckpoint(dirpath=exp.checkpoints, filename="epoch-{epochs_done:04d}", auto_insert_metric_name=False,
                        every_n_epochs=1, save_last=True, enable_version_counter=False, **epoch_kwargs),
    ]
    steps = int(params.get("checkpoint_every_n_steps", 0))
    if steps > 0:
        callbacks.append(MidEpochCheckpoint(dirpath=exp.checkpoints, every_n_train_steps=steps, save_top_k=0,
                                         save_last=True, save_on_train_epoch_end=False, enable_version_counter=False))
    minutes = float(params.get("checkpoint_every_minutes", 0))
    if minutes > 0:
        callbacks.append(MidEpochCheckpoint(dirpath=exp.checkpoints, train_time_interval=timedelta(minutes=minutes),
                                         save_top_k=0, save_last=True, save_on_train_epoch_end=False,
                                         enable_version_counter=False))
    best_metric = str(params.get("best_metric") or "")
    if best_metric:
        declared = {**(metric_modes or {}), **declared_modes((), params)}  # an explicit best_mode wins
        # Its state (best score so far) is saved in every checkpoint, so it survives resumes.
        callbacks.append(ModelCheckpoint(dirpath=exp.checkpoints, filename=Path(BEST).stem, monitor=best_metric,
                                         mode=metric_mode(best_metric, declared), save_top_k=1, save_last=False,
                                         auto_insert_metric_name=False, enable_version_counter=False))
    return callbacks

