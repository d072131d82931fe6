"""Follow the project's events in a terminal: ``python -m MLSystem.events [--experiment ID] [--job ID] [--json]``.

The same stream as the cockpit's ``/api/ws`` and ``/api/events`` (same sequence numbers), with
no cockpit needed: this process derives the events itself when nobody else does. ``--since SEQ``
first prints the events after SEQ still on disk (``--since 0``: all of them); ``--no-follow``
exits after that instead of waiting for new ones.
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
from typing import Sequence

from MLSystem.events import schema
from MLSystem.events.journal import Journal
from MLSystem.events.source import EventSource
from MLSystem.paths import ProjectPaths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m MLSystem.events", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--experiment", metavar="ID", help="only this experiment (an ID or a unique prefix)")
    parser.add_argument("--job", metavar="ID", help="only this job (its id or the hex part)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line (the wire format)")
    parser.add_argument("--since", type=int, metavar="SEQ", help="first print the events after SEQ still on disk")
    parser.add_argument("--no-follow", action="store_true", help="print what is on disk (with --since) and exit")
    args = parser.parse_args(argv)
    if args.since is not None and args.since < 0:
        parser.error("--since: must be >= 0")

    paths = ProjectPaths.discover()
    if not paths.queue.is_dir() and not paths.output.is_dir():
        print(f"error: {paths.root} has no queue/ or output/: not an MLSystem project (set MLSYSTEM_ROOT)",
              file=sys.stderr)
        return 2

    def show(events) -> None:
        for e in events:
            if schema.matches(e, args.experiment, args.job):
                print(schema.dumps(e) if args.json else schema.describe(e), flush=True)

    journal = Journal(paths)
    seq = journal.last() if args.since is None else args.since
    if args.since is not None:
        while True:
            chunk = journal.read_since(seq, 10_000)
            if not chunk:
                break
            show(chunk)
            seq = chunk[-1]["seq"]
    if args.no_follow:
        return 0
    inbox: queue.Queue = queue.Queue()
    source = EventSource(paths, inbox.put, since=seq).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            show(inbox.get())
    except (KeyboardInterrupt, SystemExit):
        pass
    except BrokenPipeError:  # `... | head`: the reader left
        sys.stderr.close()
    finally:
        source.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
