"""Plot benchmark: ``python bench/bench_plot.py [--epochs 1000] [--steps-per-epoch 100]``.

An experiment whose metrics log covers 1,000 epochs (a step row per step, an epoch row per epoch,
resume and extend events) gets all its model-layer plots drawn by ``execute_plot`` (loss, learning
rate, validation metrics, predictions and confusion matrix from the trained weights). Target:
<= 3 s on 2 CPU cores, not counting ``import torch`` (nor ``import pytorch_lightning``, which any
restored model needs; it is printed on its own row and also added to the total on another).

Baseline in the same run: the hand-rolled way (``json.loads`` every line, pyplot every point of
the loss, learning-rate and validation series, ``savefig``), for the three curve plots only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import make_project  # noqa: E402


def write_long_log(path: Path, epochs: int, steps_per_epoch: int) -> int:
    """A metrics log like a long run with two resumes and an extension; returns the row count."""
    rng = random.Random(0)
    rows, step = [], 0
    marks = {0: "new", epochs // 3: "resume", 2 * epochs // 3: "resume", int(epochs * 0.9): "extend"}
    for epoch in range(epochs):
        if epoch in marks:
            rows.append({"event": marks[epoch], "step": step, "epoch": epoch, "max_epochs": epochs, "time": 0})
        for _ in range(steps_per_epoch):
            step += 1
            loss = 2.3 * (0.997 ** epoch) + rng.random() * 0.1
            rows.append({"step": step, "epoch": epoch, "loss": loss, "lr": 1e-3 * (1 - step / (epochs * steps_per_epoch)),
                         "time": 0})
        rows.append({"step": step, "epoch": epoch, "kind": "epoch", "epoch_time": 1.0, "train_loss_epoch": loss,
                     "val_loss": loss * 1.05, "val_acc": 1 - loss / 2.5, "time": 0})
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
    return len(rows)


def naive_plots(metrics: Path, out: Path) -> None:
    """What a hand-written script does: parse everything, plot every point, one file per chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    steps = [r for r in rows if "loss" in r and "kind" not in r]
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    for name, xs, ys in (("loss", [r["step"] for r in steps], [r["loss"] for r in steps]),
                         ("lr", [r["step"] for r in steps], [r["lr"] for r in steps]),
                         ("val", [r["epoch"] for r in epochs], [r["val_acc"] for r in epochs])):
        fig, ax = plt.subplots(figsize=(7, 3.8))
        ax.plot(xs, ys)
        fig.savefig(out / f"{name}.png", dpi=100)
        plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--steps-per-epoch", type=int, default=100)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_plot_"))
    try:
        root = make_project(tmp / "proj")
        env = dict(os.environ, MLSYSTEM_ROOT=str(root))
        train = ["dataset=digits", "model=cnn", "n_train=256", "n_val=256", "batch_size=32", "max_epochs=1"]
        proc = subprocess.run([sys.executable, "-m", "MLSystem.execute_train", *train], cwd=root, env=env,
                              capture_output=True, text=True, check=True)
        eid = proc.stdout.split("trained to epoch")[0].split()[-1]
        metrics = root / "output/experiments" / eid / "metrics.jsonl"
        n_rows = write_long_log(metrics, args.epochs, args.steps_per_epoch)

        os.environ["MLSYSTEM_ROOT"] = str(root)
        os.chdir(root)
        t0 = time.perf_counter()
        import torch  # noqa: F401  (excluded from the target)
        import_torch = time.perf_counter() - t0
        # Any model is a LightningModule: restoring one imports pytorch_lightning, which costs more
        # than all the drawing. Timed on its own so both numbers are visible.
        t0 = time.perf_counter()
        import pytorch_lightning  # noqa: F401
        import_pl = time.perf_counter() - t0

        from MLSystem.execute_plot import run_plots

        t0 = time.perf_counter()
        report = run_plots(eid, layers=["model"], out=lambda *a: None)
        ours = time.perf_counter() - t0
        assert not report.failed, [o.error for o in report.failed]
        curves = sum(o.seconds for o in report.outcomes if o.name in ("loss_curves", "learning_rate", "validation_metrics"))

        naive_dir = tmp / "naive"
        naive_dir.mkdir()
        t0 = time.perf_counter()
        naive_plots(metrics, naive_dir)
        naive = time.perf_counter() - t0

        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; metrics log: {args.epochs:,} epochs, "
              f"{n_rows:,} rows, {metrics.stat().st_size / 1e6:.1f} MB\n")
        print("| measurement | result | target | |")
        print("|---|---|---|---|")
        print(f"| all {len(report.outcomes)} model-layer plots (`run_plots --layer model`: restore, weights, "
              f"predictions, 3 curves) | {ours:.2f} s | <= 3 s | {'ok' if ours <= 3 else 'MISSED'} |")
        with_pl = ours + import_pl
        print(f"| the same, counting `import pytorch_lightning` | {with_pl:.2f} s | (<= 3 s) | "
              f"{'ok' if with_pl <= 3 else 'over'} |")
        print(f"| the 3 curve plots alone (loss, learning rate, validation) | {curves:.2f} s | - | - |")
        print(f"| baseline: hand-rolled pyplot of the same 3 curves, every point | {naive:.2f} s | - | - |")
        print(f"| curves: ours / baseline | {curves / naive:.2f}x | - | - |")
        print(f"| (excluded) `import torch` | {import_torch:.2f} s | - | - |")
        print(f"| (excluded) `import pytorch_lightning` after torch | {import_pl:.2f} s | - | - |")
        for o in report.outcomes:
            print(f"|   {o.layer}/{o.name} | {o.seconds:.2f} s | | |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
