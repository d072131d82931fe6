"""Start the cockpit: ``python -m MLSystem.gui_start [--host 127.0.0.1] [--port 8080] [--token T]``.

Binds to loopback unless told otherwise; any other address needs a token (``--token`` or
``$MLSYSTEM_GUI_TOKEN``), which every page and API call then checks. The project is
``$MLSYSTEM_ROOT`` or the current directory, as for every other entry point.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import Sequence

from MLSystem.gui.auth import TOKEN_ENV
from MLSystem.paths import ProjectPaths

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m MLSystem.gui_start", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--token", default=None, help=f"access token (default ${TOKEN_ENV}); required off loopback")
    args = parser.parse_args(argv)
    args.token = args.token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(args.host) and not args.token:
        parser.error(f"--host {args.host} is reachable from other machines: give --token T or set {TOKEN_ENV}")
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port}: expected 1-65535")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from nicegui import ui

    from MLSystem.gui.app import RUN_OPTIONS, build  # lazy: NiceGUI costs ~1 s; --help stays instant

    paths = ProjectPaths.discover()
    build(paths, args.token)
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    url = f"http://{shown_host}:{args.port}/" + (f"?token={args.token}" if args.token else "")
    print(f"MLSystem cockpit for {paths.root}: {url}  (API docs: /docs; Ctrl-C to quit)", flush=True)
    ui.run(host=args.host, port=args.port, **RUN_OPTIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
