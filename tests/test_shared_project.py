"""Teammates share a project through a group folder: what one writes, the other can read.

User A (umask 002) submits and trains; user B, a second OS user whose group owns the project
folder, reads every result and job file. Creating B needs root: the test is skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import FAST, cli_env, make_project
from os_users import peer_user, run_as


@pytest.fixture
def shared_project():
    """A project in a setgid folder of B's group, as a team sets one up (files inherit the group)."""
    peer = peer_user()
    base = Path(tempfile.mkdtemp(prefix="mlsys-shared-", dir="/tmp"))  # pytest's tmp is private to root
    try:
        os.chown(base, -1, peer.pw_gid)
        os.chmod(base, 0o2775)
        old = os.umask(0o002)
        try:
            root = make_project(base / "proj")
        finally:
            os.umask(old)
        yield root, peer
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _as_a(root: Path, module: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=root, env=cli_env(root), capture_output=True,
                          text=True, timeout=600, preexec_fn=lambda: os.umask(0o002))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _unreadable(*folders: Path) -> list[str]:
    bad = []
    for top in folders:
        for dirpath, _, files in os.walk(top):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    with open(path, "rb") as fh:
                        fh.read(1)
                except OSError as exc:
                    bad.append(f"{path}: {exc.strerror}")
    return bad


@pytest.mark.slow
def test_teammate_in_the_group_reads_results_and_jobs(shared_project) -> None:
    root, peer = shared_project
    _as_a(root, "MLSystem.submit", "dataset=digits", "model=cnn", "max_epochs=2", *FAST, "--held")
    _as_a(root, "MLSystem.execute_train", "dataset=digits", "model=cnn", "max_epochs=1", *FAST)
    [exp] = (root / "output" / "experiments").iterdir()
    for name in ("experiment.json", "state.json", "config.yaml", "progress.json", "checkpoints/last.ckpt",
                 "checkpoints/epoch-0001.ckpt"):
        mode = stat.S_IMODE((exp / name).stat().st_mode)
        assert mode == 0o664, f"{name}: mode {mode:o}, expected 664 under umask 002"
    assert run_as(peer, lambda: _unreadable(exp, root / "queue")) == []
