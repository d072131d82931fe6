"""A second OS user for shared-project tests (a teammate in the same group).

Creating one needs root; tests skip with a message otherwise. The interpreter lives under
``/root`` on the test machines, which another user cannot execute, so the teammate's side runs
in a forked child that drops to that user *after* the modules it needs are imported — a real
second uid/gid for every file operation, without a second Python installation.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import traceback
from typing import Any, Callable

import pytest

PEER = "mlsys_peer"


def peer_user() -> pwd.struct_passwd:
    """The second user (created if missing); skips the test when not root."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second OS user (shared-project test)")
    try:
        return pwd.getpwnam(PEER)
    except KeyError:
        pass
    proc = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", PEER],
                          capture_output=True, text=True)
    if proc.returncode not in (0, 9):  # 9: created meanwhile by a concurrent test
        pytest.skip(f"useradd {PEER} failed: {proc.stderr.strip()}")
    return pwd.getpwnam(PEER)


def run_as(user: pwd.struct_passwd, fn: Callable[[], Any]) -> Any:
    """``fn()`` in a forked child running as ``user``; returns its (JSON-able) result or raises
    an AssertionError with the child's traceback."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges, run, report, exit without running pytest's cleanup
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            payload = {"ok": fn()}
        except BaseException:  # noqa: BLE001 - everything goes back to the parent
            payload, code = {"error": traceback.format_exc()}, 1
        with os.fdopen(write_end, "w") as fh:
            fh.write(json.dumps(payload, default=str))
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    payload = json.loads(data or '{"error": "child died without a result"}')
    if "error" in payload:
        raise AssertionError(f"as user {user.pw_name}:\n{payload['error']}")
    return payload["ok"]
