"""Time stamps in one format for every record MLSystem writes (UTC ISO-8601, milliseconds)."""

from __future__ import annotations

from datetime import datetime, timezone


def now_iso() -> str:
    """The current UTC time, e.g. ``2026-11-22T01:02:03.456+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def iso_time(timestamp: float) -> str:
    """Epoch seconds (a file's mtime) in the same format as :func:`now_iso`."""
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


def parse_iso(text: str | None) -> float | None:
    """Epoch seconds of an ISO time stamp (any precision); None when empty or malformed."""
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except (TypeError, ValueError):
        return None


def format_seconds(s: float | None) -> str:
    """A duration for people: ``45s``, ``3m07s``, ``2h05m``; ``?`` when unknown."""
    if s is None:
        return "?"
    if s >= 86400 * 365:  # a hand-written not_before far in the future
        return ">1y"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
