"""The experiments' change log: ``output/.cache/experiments-changed.log``, one experiment ID a line.

The experiment store appends a line after every write of ``experiment.json`` / ``state.json``;
the query index (``experiment_index``) re-reads just those folders instead of checking 100,000.
Best effort: a missed line is caught by the index's full check.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from MLSystem.paths import ProjectPaths


def changes_file(paths: ProjectPaths) -> Path:
    return paths.output / ".cache" / "experiments-changed.log"


def mark_changed(exp_dir: str | os.PathLike) -> None:
    """Record that the files of the experiment in ``exp_dir`` (``output/experiments/ID``) changed."""
    exp_dir = Path(exp_dir)
    log_file = exp_dir.parent.parent / ".cache" / "experiments-changed.log"
    with contextlib.suppress(OSError):
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, (exp_dir.name + "\n").encode())  # one short write with O_APPEND: never interleaved
        finally:
            os.close(fd)


def read_changes(log_file: Path, offset: int, end: int) -> list[str]:
    """IDs logged between byte ``offset`` and ``end``."""
    if end <= offset:
        return []
    with contextlib.suppress(OSError), open(log_file, "rb") as fh:
        fh.seek(offset)
        data = fh.read(end - offset)
        return [line for line in data.decode("utf-8", "replace").splitlines() if line and "/" not in line]
    return []
