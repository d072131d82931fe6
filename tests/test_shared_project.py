"""Teammates share a project through a group folder: what one writes, the other can read.

User A (umask 002) submits and trains; user B, a second OS user in the same group, reads every
result and job file. Creating B needs root: the tests are skipped with a message otherwise.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import FAST, cli_env, make_project

GROUP, PEER = "mlsys_share", "mlsys_peer"
READER = """
import json, os, sys
bad = []
for top in sys.argv[1:]:
    for dirpath, _, files in os.walk(top):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                with open(path, 'rb') as fh:
                    fh.read(1)
            except OSError as exc:
                bad.append(f"{path}: {exc.strerror}")
print(json.dumps(bad))
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"),
                                reason="needs root (and useradd) to create a second OS user for the shared-project test")


def _peer() -> tuple[int, int]:
    """(uid, gid) of a second OS user in a shared group, created on first use."""
    try:
        gid = grp.getgrnam(GROUP).gr_gid
    except KeyError:
        subprocess.run(["groupadd", GROUP], check=True)
        gid = grp.getgrnam(GROUP).gr_gid
    try:
        uid = pwd.getpwnam(PEER).pw_uid
    except KeyError:
        subprocess.run(["useradd", "-M", "-N", "-g", GROUP, "-s", "/usr/sbin/nologin", PEER], check=True)
        uid = pwd.getpwnam(PEER).pw_uid
    return uid, gid


@pytest.fixture
def shared_project():
    """A project in a setgid group folder, as a team sets one up (files inherit the group)."""
    uid, gid = _peer()
    base = Path(tempfile.mkdtemp(prefix="mlsys-shared-", dir="/tmp"))
    try:
        os.chown(base, -1, gid)
        os.chmod(base, 0o2775)
        root = base / "proj"
        old = os.umask(0o002)
        try:
            make_project(root)
        finally:
            os.umask(old)
        yield root, uid, gid
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _as_a(root: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=root, env=cli_env(root), capture_output=True,
                          text=True, timeout=600, preexec_fn=lambda: os.umask(0o002))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _unreadable_for_b(uid: int, gid: int, *folders: Path) -> list[str]:
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    proc = subprocess.run([python, "-c", READER, *map(str, folders)], user=uid, group=gid, extra_groups=[gid],
                          capture_output=True, text=True, timeout=120, env={"PATH": os.environ.get("PATH", "")})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_teammate_in_the_group_reads_results_and_jobs(shared_project) -> None:
    root, uid, gid = shared_project
    _as_a(root, "MLSystem.submit", "dataset=digits", "model=cnn", "max_epochs=2", *FAST, "--held")
    _as_a(root, "MLSystem.execute_train", "dataset=digits", "model=cnn", "max_epochs=1", *FAST)
    [exp] = (root / "output" / "experiments").iterdir()
    for name in ("experiment.json", "state.json", "config.yaml", "progress.json", "checkpoints/last.ckpt",
                 "checkpoints/epoch-0001.ckpt"):
        mode = stat.S_IMODE((exp / name).stat().st_mode)
        assert mode == 0o664, f"{name}: mode {mode:o}, expected 664 under umask 002"
    assert _unreadable_for_b(uid, gid, exp, root / "queue") == []
