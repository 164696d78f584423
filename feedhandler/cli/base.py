"""What every command shares: exit statuses, how an error is reported, and how
the stop signals (SIGINT, SIGTERM, SIGHUP) end a command's work."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any, Callable, Dict, Optional

__all__ = ["EXIT_OK", "EXIT_INPUT", "EXIT_USAGE", "EXIT_INTERRUPTED", "exit_for_signal", "fail", "StopSignals"]

EXIT_OK = 0
EXIT_INPUT = 1  # an input was unreadable, corrupt or truncated (or an output failed to write at the end)
EXIT_USAGE = 2  # a bad argument, or an output that cannot be opened (found before any work)
EXIT_INTERRUPTED = 130  # SIGINT; every stop signal exits 128 + its number (exit_for_signal)


def exit_for_signal(signum: int) -> int:
    """The exit status of a run stopped by signal ``signum``: 128 + its number,
    as a shell reports a process the signal killed (SIGHUP 129, SIGINT 130,
    SIGTERM 143), so a service manager and a script read it the same way."""
    return 128 + int(signum)


def fail(command: str, message: object, status: int) -> int:
    """Print ``feedhandler COMMAND: MESSAGE`` on stderr and return ``status``."""
    print("feedhandler %s: %s" % (command, message), file=sys.stderr)
    return status


class StopSignals:
    """While a command works, SIGINT, SIGTERM and SIGHUP alike ask it to stop
    (``on_stop``: e.g. :meth:`feedhandler.replay.Replay.stop`, one atomic store
    the C loop reads before every frame) instead of killing the process or
    raising KeyboardInterrupt mid-statement: the command then finishes what it
    has, writes its outputs, and exits with :func:`exit_for_signal` of the
    first signal.  A signal ignored when the command started (``nohup``; a
    background job's SIGINT) stays ignored.  Only the main thread can install
    handlers; elsewhere this does nothing (Ctrl-C raises KeyboardInterrupt there).

        with StopSignals() as sig:
            sig.on_stop(replay.stop)     # also called at once if a signal came first
            ...
            if sig.signum: return sig.status
    """

    NAMES = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self, on_stop: Optional[Callable[[], None]] = None) -> None:
        self.signum: Optional[int] = None
        self._on_stop = on_stop
        self._done = False
        self._old: Dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for name in self.NAMES:
                num = getattr(signal, name)
                old = signal.getsignal(num)
                if old == signal.SIG_IGN:
                    continue
                self._old[num] = old
                signal.signal(num, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for num, old in self._old.items():
            signal.signal(num, old if old is not None else signal.SIG_DFL)
        self._old.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        # Python runs this in the main thread between bytecodes: the C work
        # (in another thread, GIL released) is told to stop and ends on its own.
        if self._done:  # outputs being written: they are finished, the status stays
            return
        if self.signum is None:
            self.signum = signum
        if self._on_stop is not None:
            self._on_stop()

    def work_done(self) -> None:
        """The work is over (the outputs come next): a later signal changes
        nothing, so the status, the segment's state and the outputs agree."""
        self._done = True

    def on_stop(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` on each stop signal from now on (at once if one came already)."""
        self._on_stop = fn
        if self.signum is not None:
            fn()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def status(self) -> int:
        """The exit status for the signal taken (EXIT_OK when none came)."""
        return exit_for_signal(self.signum) if self.signum is not None else EXIT_OK
