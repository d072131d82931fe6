"""Entry point: ``python -m MLSystem.execute_train dataset=digits model=cnn max_epochs=4 lr=0.01``.

build -> decide (new / resume / extend / complete) -> ``Trainer.fit(ckpt_path=...)``.
Prints one line saying what it decided and why. Exit codes (:class:`MLSystem.errors.ExitCode`):
0 trained or already complete, 1 the code failed, 2 bad configuration, 3 stopped on request
(checkpoint saved), 4 the experiment is being trained by another process.

A damaged or missing ``last.ckpt`` resumes from the newest readable epoch checkpoint (the bad
file is kept as ``last.ckpt.damaged-TIME``). An experiment with no readable checkpoint left is
refused (exit 2) unless ``--restart`` is given: its checkpoints and metrics then move to
``replaced-TIME/`` in the experiment folder and it trains from scratch.

The "already complete" path never imports torch.

Multi-GPU / multi-node (``devices=4 num_nodes=2``) runs Lightning's DDP: every rank runs this
entry point (Lightning's launcher re-runs the command for local ranks 1..n-1; ``srun`` starts
one task per device), trains, and stops at the same step as the others; only global rank 0
takes the experiment's lease and writes its records (:mod:`MLSystem.distributed`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from MLSystem import checkpoint_manager as cm
from MLSystem import experiment_store as store
from MLSystem.builder import ExperimentBuilder, ExperimentContext
from MLSystem.distributed import is_launch_rank_zero
from MLSystem.errors import BadInputError, ExitCode, MLSystemError
from MLSystem.lightning_loggers import build as build_loggers
from MLSystem.lightning_loggers import check_available
from MLSystem.metrics_reader import mean_epoch_seconds
from MLSystem.paths import ProjectPaths
from MLSystem.placement import report_placement
from MLSystem.records import ExperimentStatus, Segment
from MLSystem.utils.cli import disk_full_message
from MLSystem.utils.clock import now_iso

log = logging.getLogger("MLSystem.train")

# Set by the runner for queued jobs: an extra metrics file and the job's stop flag.
JOB_METRICS_ENV = "MLSYSTEM_JOB_METRICS"
JOB_STOP_ENV = "MLSYSTEM_STOP_FILE"


@dataclass
class TrainResult:
    exit_code: ExitCode
    experiment_id: str | None
    action: str | None
    message: str
    epochs_done: int = 0


RESTART_FLAG = "--restart"
# What a restart moves aside (everything that describes the training so far).
_HISTORY = ("checkpoints", "metrics.jsonl", "state.json", "progress.json", "samples.jsonl")


def train(overrides: Iterable[str] | dict[str, Any] = (), *, paths: ProjectPaths | None = None,
          out=print, restart: bool = False) -> TrainResult:
    """Build, decide and train. Raises :class:`MLSystemError` for bad input."""
    return train_context(ExperimentBuilder(overrides, paths=paths).build(), out=out, restart=restart)


def train_context(ctx: ExperimentContext, *, out=print, restart: bool = False) -> TrainResult:
    """Decide and train an already built context (``execute_plot`` trains a restored one).

    ``restart``: move the experiment's checkpoints and metrics aside and train from scratch.
    """
    if not is_launch_rank_zero():
        return _fit_other_rank(ctx)
    decision = ctx.decide() if not restart else None
    if decision is not None and decision.action == cm.COMPLETE:
        out(decision.message)
        return TrainResult(ExitCode.OK, ctx.experiment_id, decision.action, decision.message, decision.epochs_done)
    check_available(ctx.all_params.get("loggers"))  # a missing optional package: bad input, nothing run
    with store.lease(ctx.exp):
        if restart and (moved := _move_history_aside(ctx.exp)):
            out(f"restart: moved the earlier training of {ctx.experiment_id} to {moved}")
        # Another process may have trained while we waited; the checkpoint is checked before use.
        decision = ctx.decide(verify=True)
        if decision.fallback and ctx.exp.last_ckpt.is_file():
            kept = ctx.exp.last_ckpt.with_name(f"{cm.LAST}.damaged-{_stamp()}")
            os.replace(ctx.exp.last_ckpt, kept)
            log.warning("%s: kept as %s", decision.fallback, kept)
        if decision.action == cm.COMPLETE:
            out(decision.message)
            return TrainResult(ExitCode.OK, ctx.experiment_id, decision.action, decision.message,
                               decision.epochs_done)
        message = decision.message
        if decision.action == cm.NEW and (why := ctx.explain_new()):
            message += f" ({why})"
        out(message)
        return _fit(ctx, decision, message)


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _move_history_aside(exp) -> Path | None:
    """Move checkpoints, metrics and state to ``replaced-TIME/`` (nothing is deleted)."""
    present = [exp.dir / name for name in _HISTORY if (exp.dir / name).exists()]
    if not present:
        return None
    target = exp.dir / f"replaced-{_stamp()}"
    target.mkdir()
    for path in present:
        os.replace(path, target / path.name)
    return target


def _fit_other_rank(ctx: ExperimentContext) -> TrainResult:
    """A DDP rank other than 0: trains in step with rank 0, which holds the lease and writes the records.
    Rank 0 decided (and set a restart's history aside) before this process was started."""
    decision = ctx.decide(verify=True)
    if decision.action == cm.COMPLETE:  # rank 0 decided the same and launched nothing
        return TrainResult(ExitCode.OK, ctx.experiment_id, decision.action, decision.message, decision.epochs_done)
    code, _, note = _run_trainer(ctx, decision)
    return TrainResult(code, ctx.experiment_id, decision.action, note)


def _fit(ctx: ExperimentContext, decision: cm.Decision, message: str) -> TrainResult:
    exp = ctx.exp
    exp.dir.mkdir(parents=True, exist_ok=True)
    handler = _file_logging(exp.log)
    try:
        log.info("%s", message)
        fingerprint = ctx.fingerprint()
        parent = ctx.selection.init_from.split("/")[0] if ctx.selection.init_from else None
        record = store.init_record(exp, ctx.identity, ctx.identity_values, fingerprint, parent)
        if decision.action != cm.NEW and (changed := store.changed_fingerprint(record, fingerprint)):
            warning = f"warning: code of {', '.join(changed)} changed since {exp.id} was created; continuing"
            print(warning, file=sys.stderr)
            log.warning(warning)
        store.write_resolved_config(exp, ctx.selection.as_dict(), ctx.all_params, ctx.sources)
        segment = Segment(kind=decision.action.value, from_epoch=decision.epochs_done, to_epoch=decision.max_epochs,
                          from_step=decision.global_step, started=now_iso(), pid=os.getpid(),
                          extra={"fallback": decision.fallback} if decision.fallback else {})
        earlier = record.segments
        store.update_record(exp, status=ExperimentStatus.RUNNING.value, max_epochs=decision.max_epochs,
                            segments=earlier + [segment.to_dict()], metric_modes=ctx.metric_modes,
                            best_metric=ctx.all_params.get("best_metric") or None,
                            fingerprint=fingerprint if decision.action == cm.NEW else record.fingerprint)
        with contextlib.suppress(FileNotFoundError):
            exp.stop_flag.unlink()  # a request meant for an earlier run
        try:
            code, status, note = _run_trainer(ctx, decision)
        except Exception as exc:
            log.error("training failed:\n%s", traceback.format_exc())
            segment.ended, segment.status = now_iso(), ExperimentStatus.FAILED.value
            with contextlib.suppress(OSError):  # a full disk must not hide the error being reported
                store.update_record(exp, status=ExperimentStatus.FAILED.value, segments=earlier + [segment.to_dict()],
                                    error=(disk_full_message(exc) or f"{type(exc).__name__}: {exc}")[:500])
            raise
        state = cm.training_state(exp)
        segment.ended, segment.status = now_iso(), status
        segment.to_step = state.global_step if state else None
        segment.reached_epoch = state.epochs_completed if state else None
        done = state.epochs_completed if state else 0
        store.update_record(exp, status=status, segments=earlier + [segment.to_dict()], epochs_done=done,
                            global_step=state.global_step if state else 0, epoch_seconds=mean_epoch_seconds(exp.metrics))
        log.info("finished: %s", note)  # each note names its outcome ("stopped …", "… trained to epoch …")
        return TrainResult(code, exp.id, decision.action, note or message, done)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _run_trainer(ctx: ExperimentContext, decision: cm.Decision) -> tuple[ExitCode, str, str]:
    """Run Lightning; returns (exit code, experiment status, note)."""
    import warnings

    import pytorch_lightning as pl
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    # lazy: Lightning and torch load only when training starts ("already complete" stays torch-free)
    from MLSystem.callbacks import JobLoggingCallback, StopCallback, StopRequested
    from MLSystem.resumable import ExactResumeCallback  # lazy: imports torch

    report_placement()  # the runner's slot and thread budget, applied to torch and logged
    params, exp = ctx.all_params, ctx.exp
    rank_zero = is_launch_rank_zero()
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # Lightning 2.6 on torch 2.11
    if not os.environ.get("SLURM_JOB_ID"):
        # Not inside a Slurm allocation: this is one local process that MLSystem (or the user)
        # started, so Lightning's hint to prepend `srun` (given whenever `srun` is installed)
        # does not apply. Inside an allocation without srun the hint matters and is kept.
        warnings.filterwarnings("ignore", message=".*`srun` command is available on your system.*")
    pl.seed_everything(int(params["seed"]), workers=True, verbose=False)
    model = ctx.model
    if decision.action == cm.NEW and ctx.selection.init_from:
        _warm_start(ctx, model)

    stop_event = threading.Event()
    previous, on_signal = _install_stop_signals(stop_event)
    metrics_files = [exp.metrics] + ([Path(os.environ[JOB_METRICS_ENV])] if os.environ.get(JOB_METRICS_ENV) else [])
    flags = [exp.stop_flag] + ([Path(os.environ[JOB_STOP_ENV])] if os.environ.get(JOB_STOP_ENV) else [])
    stop = StopCallback(flags, stop_event, exp.last_ckpt, signal_handler=on_signal)
    logging_cb = JobLoggingCallback(metrics_files, exp.progress, log_every_n_steps=int(params["log_every_n_steps"]),
                                    run_kind=decision.action, mid_epoch=decision.mid_epoch)
    callbacks = [
        ExactResumeCallback(),
        *([logging_cb] if rank_zero else []),  # one writer of metrics/progress files per experiment
        stop,
        *cm.checkpoint_callbacks(exp, params, ctx.metric_modes),
    ]
    trainer = pl.Trainer(
        max_epochs=decision.max_epochs,
        accelerator=params["accelerator"],
        devices=_devices(params["devices"]),
        num_nodes=int(params.get("num_nodes", 1)),
        precision=params["precision"],
        gradient_clip_val=float(params["grad_clip"]) or None,
        callbacks=callbacks,
        plugins=[cm.atomic_checkpoint_io(), *_cluster_plugins()],
        # MLSystem's loaders shard the data per rank themselves (resumably); Lightning's
        # DistributedSampler injection would replace them (and cannot wrap a bucket sampler).
        use_distributed_sampler=False,
        logger=build_loggers(params.get("loggers"), exp, resume_step=decision.global_step) or False,
        log_every_n_steps=int(params["log_every_n_steps"]),
        enable_progress_bar=sys.stdout.isatty() and rank_zero,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(exp.dir),
    )
    ckpt = str(decision.ckpt_path) if decision.action in (cm.RESUME, cm.EXTEND) else None
    t0 = time.time()
    try:
        _check_world_size(ctx, decision, trainer.world_size)
        trainer.fit(model, datamodule=ctx.datamodule, ckpt_path=ckpt)
    except (StopRequested, SIGTERMException) as exc:
        note = f"stopped {exp.id} at step {trainer.global_step}; resumable (checkpoint saved)"
        log.info("%s (%s)", note, type(exc).__name__)
        if rank_zero:
            print(note, flush=True)
        return ExitCode.STOPPED, ExperimentStatus.STOPPED.value, note
    finally:
        _restore_signals(previous)
    state = cm.training_state(exp)
    done = state.epochs_completed if state else None
    if stop.stopped_at_epoch_end and (done or 0) < decision.max_epochs:
        note = f"stopped {exp.id} after epoch {done}; resumable (checkpoint saved)"
        log.info("%s", note)
        if rank_zero:
            print(note, flush=True)
        return ExitCode.STOPPED, ExperimentStatus.STOPPED.value, note
    note = f"{exp.id} trained to epoch {done}/{decision.max_epochs} in {time.time() - t0:.1f}s"
    if rank_zero:
        print(note, flush=True)
    return ExitCode.OK, ExperimentStatus.COMPLETE.value, note


def _cluster_plugins() -> list:
    """Under Slurm, Lightning's own auto-requeue (a SIGUSR1 handler running ``scontrol requeue``)
    is turned off: the engine (submitit) owns requeueing, through the graceful-stop path."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def _check_world_size(ctx: ExperimentContext, decision: cm.Decision, world_size: int) -> None:
    """A mid-epoch checkpoint resumes exactly only on as many processes as wrote it."""
    if not decision.mid_epoch:
        return
    state = cm.training_state(ctx.exp)
    saved = int(state.extra.get("world_size", 1)) if state else 1
    if saved != world_size:
        raise BadInputError(f"devices/num_nodes: {ctx.experiment_id} was stopped mid-epoch on {saved} "
                            f"process(es); resume it with devices x num_nodes = {saved} (not {world_size}), "
                            f"or warm-start from an epoch checkpoint")


def _warm_start(ctx: ExperimentContext, model) -> None:
    """Initialise weights from ``init_from=EXPERIMENT[/CHECKPOINT]`` (a new experiment; the parent is untouched)."""
    import torch

    ref = ctx.selection.init_from or ""
    parent_prefix, _, ckpt_name = ref.partition("/")
    parent = store.resolve_id(ctx.paths, parent_prefix)
    path = cm.find_checkpoint(ctx.paths.experiment(parent), ckpt_name or None)
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    log.info("warm start from %s (%d missing, %d unexpected keys)", path, len(missing), len(unexpected))
    print(f"warm start from {parent}/{path.stem}", flush=True)


def _devices(value: str) -> Any:
    value = str(value)
    return int(value) if value.isdigit() else value


def _install_stop_signals(event: threading.Event) -> tuple[dict, Any]:
    """First SIGTERM / Ctrl-C: stop gracefully at the next step. A second Ctrl-C interrupts.
    Returns the previous handlers and the handler (DDP runs re-install it over Lightning's)."""
    previous = {}

    def on_signal(signum, frame):
        if signum == signal.SIGINT and event.is_set():
            raise KeyboardInterrupt
        event.set()
        print(f"received {signal.Signals(signum).name}: stopping after this step (checkpoint kept)",
              file=sys.stderr, flush=True)

    for sig in (signal.SIGTERM, signal.SIGINT):
        # ValueError: not in the main thread (e.g. called from a GUI worker); no signal handling then.
        with contextlib.suppress(ValueError):
            previous[sig] = signal.signal(sig, on_signal)
    return previous, on_signal


def _restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _file_logging(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("pytorch_lightning", "lightning", "lightning_fabric"):
        logging.getLogger(name).propagate = True
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    restart = RESTART_FLAG in argv
    argv = [a for a in argv if a != RESTART_FLAG]
    # A log handler that cannot write (full disk) must not print its own traceback per record.
    logging.raiseExceptions = False
    try:
        result = train(argv, restart=restart)
    except MLSystemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except Exception as exc:
        _report_crash(argv, exc)
        return int(ExitCode.FAILED)
    if result.exit_code == ExitCode.STOPPED and not is_launch_rank_zero():
        # Rank 0 reports the stop. Lightning's launcher SIGKILLs rank 0 when another rank
        # exits non-zero, which would cut rank 0's bookkeeping short.
        return int(ExitCode.OK)
    return int(result.exit_code)


def _report_crash(argv: list[str], exc: BaseException) -> None:
    """One line on stderr; the traceback is in the experiment's ``train.log`` (or a fallback file)."""
    if message := disk_full_message(exc):
        print(f"error: {message}", file=sys.stderr)
        return
    target = None
    with contextlib.suppress(Exception):  # the config itself may be what failed
        target = ExperimentBuilder(argv).build().exp.log
    if target is None or not target.exists():
        target = ProjectPaths.discover().output / "execute_train-errors.log"
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(f"\n[{now_iso()}] execute_train {' '.join(argv)}\n{traceback.format_exc()}")
    first = (str(exc).strip().splitlines() or [""])[0]
    print(f"error: {type(exc).__name__}: {first} (traceback in {target})", file=sys.stderr)


if __name__ == "__main__":
    from MLSystem.utils.cli import run_main

    sys.exit(run_main(main))
