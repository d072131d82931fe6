"""Start the cockpit: ``python -m MLSystem.gui_start [--host 127.0.0.1] [--port 8080] [--token T | --no-token]``.

Binds to loopback unless told otherwise. Every page, API call and websocket needs a token, as in
Jupyter: a fresh random one per start (printed in the start URL; opening that URL once sets a
cookie), or ``--token T`` / ``$MLSYSTEM_GUI_TOKEN``. ``--no-token`` drops it on loopback only:
then any user of this machine can drive the cockpit. Requests must name a Host the cockpit was
started for and, when they carry an Origin, come from its own pages (see SECURITY.md). The
project is ``$MLSYSTEM_ROOT`` or the current directory, as for every other entry point.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from typing import Sequence

from MLSystem.gui.auth import TOKEN_ENV
from MLSystem.gui.guard import WILDCARD_BINDS
from MLSystem.gui.guard import is_loopback as _is_loopback
from MLSystem.paths import ProjectPaths


def is_loopback(host: str) -> bool:
    return _is_loopback(host.strip("[]").lower())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m MLSystem.gui_start", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--token", default=None,
                        help=f"access token (default ${TOKEN_ENV}, else a random one printed at start; "
                             "other local users can read a --token from the process list)")
    parser.add_argument("--no-token", action="store_true",
                        help="loopback only: no token (any user of this machine can then use the cockpit)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also accept requests addressed to this host name (a reverse proxy, an alias)")
    args = parser.parse_args(argv)
    args.token = args.token or os.environ.get(TOKEN_ENV) or None
    if args.no_token:
        if not is_loopback(args.host):
            parser.error(f"--no-token: --host {args.host} is reachable from other machines; it needs a token")
        if args.token:
            parser.error(f"--no-token and a token (--token or ${TOKEN_ENV}) contradict each other")
    elif not args.token:
        args.token = secrets.token_urlsafe(24)
        args.generated_token = True
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port}: expected 1-65535")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from nicegui import ui

    from MLSystem.gui.app import RUN_OPTIONS, build  # lazy: NiceGUI costs ~1 s; --help stays instant

    paths = ProjectPaths.discover()
    build(paths, args.token, bind=args.host, allow_hosts=args.allow_host)
    shown_host = "127.0.0.1" if args.host in WILDCARD_BINDS else args.host
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    url = f"http://{shown_host}:{args.port}/" + (f"?token={args.token}" if args.token else "")
    print(f"MLSystem cockpit for {paths.root}: {url}  (API docs: /docs; Ctrl-C to quit)", flush=True)
    ui.run(host=args.host, port=args.port, **RUN_OPTIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
