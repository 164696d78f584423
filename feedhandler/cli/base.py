"""What every command shares: exit statuses and how an error is reported."""
from __future__ import annotations

import sys

__all__ = ["EXIT_OK", "EXIT_INPUT", "EXIT_USAGE", "EXIT_INTERRUPTED", "fail"]

EXIT_OK = 0
EXIT_INPUT = 1      # an input was unreadable, corrupt or truncated
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def fail(command: str, message: object, status: int) -> int:
    """Print ``feedhandler COMMAND: MESSAGE`` on stderr and return ``status``."""
    print("feedhandler %s: %s" % (command, message), file=sys.stderr)
    return status
