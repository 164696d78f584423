"""What the two server commands (rewind-server, glimpse-server) share: the
--listen address and serving until SIGINT/SIGTERM."""
from __future__ import annotations

import signal
from typing import Any, Optional, Tuple

from .base import EXIT_USAGE, fail

__all__ = ["listen_address", "serve_until_signal"]


def listen_address(command: str, value: str) -> Tuple[Optional[Tuple[str, int]], int]:
    """(host, port) of a --listen value (port 0: any free port), or (None, exit
    status) after saying why on stderr."""
    from ..endpoints import EndpointError, parse_endpoint
    try:
        return parse_endpoint(value, "--listen", ipv4=False, allow_port_zero=True), 0
    except EndpointError as exc:
        detail = "" if exc.reason.startswith("expected") else " (%s)" % exc.reason
        return None, fail(command, "--listen needs HOST:PORT, got %r%s" % (value, detail), EXIT_USAGE)


def serve_until_signal(server: Any, banner: str) -> None:
    """Print `banner`, serve until SIGINT/SIGTERM stops the server, close it and
    put the previous signal handlers back."""
    def on_signal(signum: int, frame: Any) -> None:
        server.stop()
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    print(banner, flush=True)
    try:
        server.serve_forever()
    finally:
        server.close()
        for s, h in old.items():
            signal.signal(s, h)
