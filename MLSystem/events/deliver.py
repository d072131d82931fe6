"""Send one webhook notification: ``python -m MLSystem.events.deliver`` with the order on stdin.

``{"url", "headers", "timeout", "retries", "body"}``. POSTs ``body`` as JSON; a 2xx answer is
success; a network error, a timeout, 429 or 5xx is retried after 1, 2, 4, 8… s (at most
``retries`` times, ``MAX_TOTAL_S`` in all); another 4xx is not (the request itself is wrong).
Prints one line per outcome (the runner sends it to ``queue/logs/notify.log``) naming only the
receiver's host. No torch, no NiceGUI: it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

from MLSystem.events.notify import redact

MAX_TOTAL_S = 120.0
BACKOFF_CAP_S = 30.0


def _say(text: str) -> None:
    print(f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} {text}", flush=True)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "MLSystem", **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def deliver(order: dict) -> bool:
    url, where = order["url"], redact(order["url"])
    body = json.dumps(order["body"], default=str).encode()
    what = f"{order['body'].get('event')} {order['body'].get('job_id') or ''}".strip()
    retries, deadline = int(order.get("retries", 4)), time.monotonic() + MAX_TOTAL_S
    for attempt in range(retries + 1):
        try:
            status = post(url, body, order.get("headers") or {}, float(order.get("timeout", 5)))
            problem = None if 200 <= status < 300 else f"HTTP {status}"
        except Exception as exc:  # network errors, timeouts, bad TLS: all worth a retry
            status, problem = None, type(exc).__name__ + (f" ({exc.reason})" if hasattr(exc, "reason") else "")
        if problem is None:
            _say(f"notify {what} -> {where}: delivered (attempt {attempt + 1})")
            return True
        final = status is not None and 400 <= status < 500 and status != 429
        wait = min(BACKOFF_CAP_S, 2.0 ** attempt)
        if final or attempt == retries or time.monotonic() + wait > deadline:
            _say(f"notify {what} -> {where}: gave up after {attempt + 1} attempt(s): {problem}")
            return False
        _say(f"notify {what} -> {where}: {problem}; retry in {wait:.0f}s")
        time.sleep(wait)
    return False


def main() -> int:
    try:
        order = json.loads(sys.stdin.read())
    except ValueError:
        _say("notify: unreadable order on stdin")
        return 2
    return 0 if deliver(order) else 1


if __name__ == "__main__":
    sys.exit(main())
