"""Lightning callbacks of the framework: progress/metrics logging and graceful stop.

* :class:`JobLoggingCallback` appends one JSON row per logged step / epoch / event to the
  experiment's ``metrics.jsonl`` (and to the queue job's metrics file when run by the runner),
  keeps ``progress.json`` current for live views, and prints progress lines when the output is
  not a terminal. After a resume it drops rows newer than the restored step, so the series
  continues without duplicated steps.
* :class:`StopCallback` turns a stop request (a flag file, SIGTERM or Ctrl-C) into a checkpoint
  at the next step and a :class:`StopRequested` exception (exit code 3 in ``execute_train``).
  Under DDP a request seen by any rank stops every rank at the same step.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from pytorch_lightning import Callback

from MLSystem.utils.atomic import atomic_write_json, atomic_write_text


class StopRequested(Exception):
    """Training stopped on request after saving a checkpoint."""


def _scalar(value: Any) -> float | None:
    try:
        v = float(value.detach().cpu().item() if hasattr(value, "detach") else value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return v if math.isfinite(v) else None


class MetricsLog:
    """An append-only JSONL file whose rows carry a global ``step``."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = None

    def truncate_after(self, step: int) -> int:
        """Drop rows past ``step`` (and events at it, from an attempt that did not progress)."""
        if not self.path.exists():
            return 0
        kept, dropped = [], 0
        for raw in self.path.read_bytes().splitlines():
            try:
                line = raw.decode("utf-8")
                row = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):  # a line cut by a kill mid-write, or garbage
                dropped += 1
                continue
            if not isinstance(row, dict):
                dropped += 1
                continue
            s = row.get("step", 0)
            if s > step or ("event" in row and s >= step):
                dropped += 1
            else:
                kept.append(line)
        if dropped:
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        return dropped

    def write(self, row: dict[str, Any]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(json.dumps(row, separators=(",", ":")) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class JobLoggingCallback(Callback):
    """Metrics rows, live progress file and console progress for one training run."""

    def __init__(self, metrics_files: Iterable[Path], progress_file: Path, *, log_every_n_steps: int = 10,
                 run_kind: str = "new", mid_epoch: bool = False, console_interval: float = 10.0,
                 progress_interval: float = 1.0):
        self.logs = [MetricsLog(Path(p)) for p in metrics_files]
        self.progress_file = progress_file
        self.every = max(1, int(log_every_n_steps))
        self.run_kind = run_kind
        self.mid_epoch = mid_epoch  # the run starts inside an epoch (resume markers say "mid-epoch N")
        self.console = not sys.stdout.isatty()
        self.console_interval = console_interval
        self.progress_interval = progress_interval
        self._t0 = time.time()
        self._last_progress = 0.0
        self._last_console = 0.0
        self._epoch_t0 = time.time()

    # -- helpers -------------------------------------------------------------------------------
    def _write(self, row: dict[str, Any]) -> None:
        row.setdefault("time", round(time.time(), 3))
        for log in self.logs:
            log.write(row)

    @staticmethod
    def _lr(trainer) -> float | None:
        if not trainer.optimizers:
            return None
        return _scalar(trainer.optimizers[0].param_groups[0]["lr"])

    def _progress(self, trainer, batch_idx: int, loss: float | None, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_progress < self.progress_interval:
            return
        self._last_progress = now
        atomic_write_json(self.progress_file, {
            "epoch": trainer.current_epoch + 1, "max_epochs": trainer.max_epochs,
            "batch": batch_idx + 1, "batches": _count(trainer.num_training_batches),
            "step": int(trainer.global_step), "loss": loss, "lr": self._lr(trainer),
            "elapsed": round(now - self._t0, 1), "updated": now,
        })
        if self.console and (force or now - self._last_console >= self.console_interval):
            self._last_console = now
            print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} "
                  f"batch {batch_idx + 1}/{_count(trainer.num_training_batches)} step {trainer.global_step}"
                  + (f" loss {loss:.4f}" if loss is not None else ""), flush=True)

    # -- hooks ---------------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        step = int(trainer.global_step)
        for log in self.logs:
            log.truncate_after(step)
        self._write({"event": self.run_kind, "step": step, "epoch": trainer.current_epoch,
                     "max_epochs": trainer.max_epochs, "mid_epoch": self.mid_epoch})

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_t0 = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        step = int(trainer.global_step)
        if step % self.every == 0:
            loss_v = _scalar(loss) if loss is not None else None
            self._write({"step": step, "epoch": trainer.current_epoch, "loss": loss_v, "lr": self._lr(trainer)})
            self._progress(trainer, batch_idx, loss_v)
        elif time.time() - self._last_progress >= self.progress_interval:
            self._progress(trainer, batch_idx, _scalar(loss) if loss is not None else None)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        metrics = {k: _scalar(v) for k, v in trainer.callback_metrics.items()}
        row = {"step": int(trainer.global_step), "epoch": trainer.current_epoch, "kind": "epoch",
               "epoch_time": round(time.time() - self._epoch_t0, 3)}
        row.update({k: v for k, v in metrics.items() if v is not None})
        self._write(row)
        self._progress(trainer, _count(trainer.num_training_batches) - 1, metrics.get("train_loss"), force=True)
        if self.console:
            shown = " ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()) if v is not None)
            print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} done in "
                  f"{row['epoch_time']:.1f}s {shown}", flush=True)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        for log in self.logs:
            log.close()


def _count(n: Any) -> int:
    return int(n) if n != float("inf") else -1


class StopCallback(Callback):
    """Checkpoint and stop at the next step when a flag file exists or ``event`` is set."""

    def __init__(self, flag_files: Iterable[Path], event: threading.Event, last_ckpt: Path,
                 signal_handler: Callable | None = None):
        self.flag_files = [Path(p) for p in flag_files]
        self.event = event
        self.last_ckpt = last_ckpt
        self.signal_handler = signal_handler
        self.saved = False
        self.stopped_at_epoch_end = False

    def on_train_start(self, trainer, pl_module) -> None:
        # Under DDP, Lightning's SIGTERM handler broadcasts from inside the handler and kills the
        # other ranks; the graceful path is ours: the request is reduced over the ranks each step.
        if trainer.world_size > 1 and self.signal_handler is not None:
            with contextlib.suppress(ValueError):  # not the main thread
                signal.signal(signal.SIGTERM, self.signal_handler)

    def requested(self) -> bool:
        return self.event.is_set() or any(p.exists() for p in self.flag_files)

    def _save_and_stop(self, trainer) -> None:
        trainer.save_checkpoint(self.last_ckpt)
        self.saved = True
        raise StopRequested(f"stopped at step {trainer.global_step}; checkpoint saved")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        wanted = self.requested()
        if trainer.world_size > 1:  # every rank must stop (and save, a collective) at the same step
            wanted = trainer.strategy.reduce_boolean_decision(wanted, all=False)
        if not wanted:
            return
        if batch_idx + 1 >= trainer.num_training_batches:
            # Last batch: let validation and the epoch-end checkpoint run, then stop cleanly
            # (a checkpoint saved here would make Lightning train an extra epoch on resume).
            trainer.should_stop = True
            self.stopped_at_epoch_end = True
            return
        self._save_and_stop(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # Lightning raises SIGTERMException on its own when SIGTERM arrives in validation or
        # between hooks; keep what was learned like ModelCheckpoint would not.
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and not self.saved:
            trainer.save_checkpoint(self.last_ckpt)
            self.saved = True
