"""What the two server commands (rewind-server, glimpse-server) share: the
--listen address, the warning for a wildcard one, and serving until SIGINT/SIGTERM."""

from __future__ import annotations

import ipaddress
import signal
import sys
from typing import Any, Optional, Tuple

from .base import EXIT_USAGE, fail

__all__ = ["listen_address", "serve_until_signal", "warn_if_wildcard", "warn"]


def listen_address(command: str, value: str) -> Tuple[Optional[Tuple[str, int]], int]:
    """(host, port) of a --listen value (port 0: any free port), or (None, exit
    status) after saying why on stderr."""
    from ..endpoints import EndpointError, parse_endpoint

    try:
        return parse_endpoint(value, "--listen", ipv4=False, allow_port_zero=True), 0
    except EndpointError as exc:
        detail = "" if exc.reason.startswith("expected") else " (%s)" % exc.reason
        return None, fail(command, "--listen needs HOST:PORT, got %r%s" % (value, detail), EXIT_USAGE)


def warn(command: str, message: str) -> None:
    print("feedhandler %s: warning: %s" % (command, message), file=sys.stderr, flush=True)


def is_wildcard(host: str) -> bool:
    """0.0.0.0, ::, or an empty host: every interface of the machine."""
    try:
        return not host or ipaddress.ip_address(host.split("%", 1)[0]).is_unspecified
    except ValueError:
        return False


def warn_if_wildcard(command: str, address: Tuple[str, int], what: str) -> None:
    """Say on stderr when the bound address is every interface: a test server
    usually belongs on loopback, and `what` says what anyone who can reach it gets."""
    if is_wildcard(address[0]):
        warn(
            command,
            "listening on every interface (%s): %s; bind a loopback or private "
            "address unless that is meant" % (address[0] or "*", what),
        )


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
