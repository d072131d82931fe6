"""Incremental file reading by byte offset: live views read only what was appended."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Chunk:
    """Complete lines appended since the last read; ``reset``: the file was replaced or shrank,
    so earlier lines are no longer valid (a resume rewrites the metrics log)."""

    lines: list[str] = field(default_factory=list)
    reset: bool = False


class FileTail:
    """Follows one file by byte offset; a partial last line waits for its newline."""

    def __init__(self, path: Path, *, start_bytes: int | None = None):
        self.path = Path(path)
        self.offset = 0
        self.inode: int | None = None
        self.start_bytes = start_bytes  # first read: only the last N bytes (log tails)
        self._partial = b""

    def read(self, max_bytes: int = 8 << 20) -> Chunk:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            reset = self.inode is not None
            self.offset, self.inode, self._partial = 0, None, b""
            return Chunk(reset=reset)
        chunk = Chunk()
        if self.inode is None:
            self.inode = st.st_ino
            if self.start_bytes is not None and st.st_size > self.start_bytes:
                self.offset = st.st_size - self.start_bytes
        elif st.st_ino != self.inode or st.st_size < self.offset:
            self.offset, self.inode, self._partial, chunk.reset = 0, st.st_ino, b"", True
        if st.st_size == self.offset:
            return chunk
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(max_bytes)
        self.offset += len(data)
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        chunk.lines = data[:cut].decode("utf-8", "replace").splitlines()
        return chunk


def read_range(path: Path, offset: int, max_bytes: int) -> tuple[str, int, int]:
    """``(text, next_offset, size)`` of ``path`` from ``offset`` (negative: from the end)."""
    size = os.path.getsize(path)
    offset = max(0, min(offset if offset >= 0 else size + offset, size))
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(max_bytes)
    return data.decode("utf-8", "replace"), offset + len(data), size
