"""A real single-node Slurm for tests (``scripts/slurm_up.sh``): the ``slurm_cluster`` fixture.

Tests that use it are marked ``slurm``. Where Slurm is not installed and this is not root with
apt-get, they are skipped with the reason; where the script was possible but failed, they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm_up.sh"


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """Brings the local Slurm up (installing it when root with apt); returns its partition name."""
    if shutil.which("sinfo") and subprocess.run(["bash", str(SCRIPT), "--check"]).returncode == 0:
        return _partition()
    if not (shutil.which("slurmctld") and shutil.which("munged")) and not (os.geteuid() == 0 and shutil.which("apt-get")):
        pytest.skip("Slurm tests: slurm-wlm/munge not installed and not root with apt-get "
                    "(run scripts/slurm_up.sh as root to enable them)")
    if os.geteuid() != 0:
        pytest.skip("Slurm tests: starting munged/slurmctld/slurmd needs root (run scripts/slurm_up.sh as root)")
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=600)
    if proc.returncode == 3:
        pytest.skip(f"Slurm tests: {proc.stderr.strip()}")
    assert proc.returncode == 0, f"scripts/slurm_up.sh failed:\n{proc.stdout}\n{proc.stderr}"
    return _partition()


def _partition() -> str:
    out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout.split()
    return (out[0] if out else "debug").rstrip("*")


@pytest.fixture(scope="session")
def slurm_two_nodes(slurm_cluster) -> str:
    """A separate 2-node cluster on this host (``scripts/slurm_up.sh --two-nodes``: two slurmd);
    returns its ``SLURM_CONF`` (partition ``two``, nodes ``mlsn1``/``mlsn2``, one CPU each)."""
    if os.geteuid() != 0:
        pytest.skip("Slurm 2-node tests: starting slurmctld/slurmd needs root")
    proc = subprocess.run(["bash", str(SCRIPT), "--two-nodes"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"scripts/slurm_up.sh --two-nodes failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.strip().splitlines()[-1]
